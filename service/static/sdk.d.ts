// TypeScript declarations of the Abacus browser SDK: window.abacus from /sdk.js, or the default
// export of /sdk.mjs. See docs/sdk.md.

export type AttributeValue = string | number | boolean | null | AttributeValue[] | { [name: string]: AttributeValue };
export type Attributes = { [name: string]: AttributeValue };
/** A condition in GrowthBook's syntax: dotted attribute paths, $-operators, $and/$or/$nor/$not. */
export type Condition = { [pathOrOperator: string]: unknown };

export interface Exposure {
  experiment: string;
  variant: string;
  visitorId: string;
}

export interface InitOptions {
  /** Where the service is; defaults to the folder sdk.js was served from. */
  endpoint?: string;
  /** "server" asks POST /v1/assign; "local" decides from GET /v1/definitions. */
  mode?: "server" | "local";
  visitorId?: string;
  /** Visitor attributes for targeting; `id` is always the visitor id. */
  attributes?: Attributes;
  /** Called once per experiment and visitor with a variant (not for ?abacus= pins). */
  onExposure?: (exposure: Exposure) => void;
  timeoutMs?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  cookieDomain?: string | null;
  debug?: boolean;
  /** A definitions snapshot to decide from (as GET /v1/definitions answers). */
  definitions?: DefinitionSnapshot;
}

export interface TrackOptions {
  value?: number;
  eventId?: string;
}

export interface HideOptions {
  /** How long the page may stay hidden, in milliseconds (default 1000). */
  timeoutMs?: number;
  /** What to hide (default "html"). */
  selector?: string;
}

export interface PublicDefinition {
  key: string;
  seed: string;
  hash_version: 1 | 2;
  coverage: number;
  variants: { key: string; weight: number }[];
  ranges: [number, number][];
  status: "running" | "paused" | "stopped";
  winner: string | null;
  condition?: Condition | null;
  hash_attribute?: string;
  namespace?: [string, number, number] | null;
  holdout?: string | null;
  forced?: { [visitorId: string]: string };
}

export interface DefinitionSnapshot {
  experiments: PublicDefinition[];
}

export interface Abacus {
  readonly version: string;
  init(options?: InitOptions): Abacus;
  assign(key: string): Promise<string | null>;
  assign(keys: string[]): Promise<{ [key: string]: string | null }>;
  hideUntilAssigned(key: string, options?: HideOptions): Promise<string | null>;
  hideUntilAssigned(keys: string[], options?: HideOptions): Promise<{ [key: string]: string | null }>;
  track(event: string, options?: TrackOptions): Promise<boolean>;
  flush(): Promise<number>;
  visitorId(): string | null;
  pending(): number;
  definitions(): Promise<{ [key: string]: PublicDefinition } | null>;
  bucketing: {
    fnv1a32(text: string): number;
    hash(seed: string, value: string, version?: 1 | 2): number | null;
    bucketRanges(count: number, coverage?: number, weights?: number[]): [number, number][];
    chooseVariant(bucket: number, ranges: [number, number][]): number;
    equalWeights(count: number): number[];
    inNamespace(visitorId: string, namespace: [string, number, number]): boolean;
    decide(
      definition: PublicDefinition | undefined,
      visitorId: string,
      attributes?: Attributes,
      byKey?: { [key: string]: PublicDefinition },
    ): string | null;
  };
  targeting: {
    evalCondition(attributes: Attributes, condition: Condition, savedGroups?: { [id: string]: AttributeValue[] }): boolean;
    paddedVersion(version: unknown): string;
  };
}

declare const abacus: Abacus;
export default abacus;
export declare const init: Abacus["init"], assign: Abacus["assign"], track: Abacus["track"],
  flush: Abacus["flush"], visitorId: Abacus["visitorId"], pending: Abacus["pending"],
  definitions: Abacus["definitions"], hideUntilAssigned: Abacus["hideUntilAssigned"],
  bucketing: Abacus["bucketing"], targeting: Abacus["targeting"];

declare global {
  interface Window {
    abacus: Abacus;
  }
}
