/*! Abacus browser SDK: a stable visitor id, assignment (server or local decision), and event
 * tracking that survives page unloads, outages and retries without double counting.
 * Targeting in GrowthBook's condition syntax, QA forcing by ?abacus=KEY:VARIANT, onExposure and
 * an anti-flicker helper. Dependency-free, ES2017. Public surface: window.abacus (see
 * docs/sdk.md; types in sdk.d.ts, an ES module at sdk.mjs). */
(function (root) {
  "use strict";
  if (root.abacus && root.abacus.__abacus) return; // loaded twice: keep the first instance

  var COOKIE = "abacus_vid";
  var COOKIE_MAX_AGE_SECONDS = 31536000; // one year
  // The server's input rules and limits (experiments/limits.py), filled in when it serves this
  // file, so the browser and the server cannot disagree.
  var LIMITS = __ABACUS_LIMITS__;
  var EVENT_NAME = new RegExp(LIMITS.event_name_pattern);
  var EVENT_ID = new RegExp(LIMITS.event_id_pattern);
  var EXPERIMENT_KEY = new RegExp(LIMITS.key_pattern);
  var VISITOR_ID = new RegExp(LIMITS.visitor_id_pattern);
  var MAX_QUEUE = 1000;
  var MAX_BATCH = 50; // keeps keepalive bodies far below the browser's 64 KiB budget
  var MAX_AGE_MS = LIMITS.sdk_queue_max_age_seconds * 1000; // older events the server would refuse
  var LATE_MS = 600000; // an event delivered later than this carries its own timestamp
  // an ES module has no currentScript: sdk.mjs hands over its own URL instead
  var scriptSrc = (document.currentScript && document.currentScript.src) || root.__abacusModuleUrl;

  // ---- bucketing: the same functions as experiments/bucketing.py (GrowthBook-compatible) ----

  /** FNV-1a 32-bit over the UTF-16 code units of text. */
  function fnv1a32(text) {
    var h = 0x811c9dc5;
    for (var i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
    return h >>> 0;
  }

  /** The visitor's bucket in [0, 1) for seed: v2 (default) or v1; null for another version. */
  function hash(seed, value, version) {
    if (version === undefined || version === 2) {
      return (fnv1a32(String(fnv1a32(seed + value))) % 10000) / 10000;
    }
    if (version === 1) return (fnv1a32(value + seed) % 1000) / 1000;
    return null;
  }

  function equalWeights(count) {
    var out = [];
    for (var i = 0; i < count; i++) out.push(1 / count);
    return out;
  }

  /** Variant i owns [c_i, c_i + coverage * w_i), c_i the cumulative weight before it. */
  function bucketRanges(count, coverage, weights) {
    coverage = Math.min(Math.max(coverage === undefined ? 1 : coverage, 0), 1);
    var chosen = Array.isArray(weights) ? weights.slice() : [];
    var total = chosen.reduce(function (a, w) { return a + w; }, 0);
    if (chosen.length !== count || !(total >= 0.99 && total <= 1.01)) chosen = equalWeights(count);
    var start = 0;
    return chosen.map(function (w) {
      var range = [start, start + coverage * w];
      start += w;
      return range;
    });
  }

  function chooseVariant(bucket, ranges) {
    for (var i = 0; i < ranges.length; i++) {
      if (bucket >= ranges[i][0] && bucket < ranges[i][1]) return i;
    }
    return -1;
  }

  function inNamespace(visitorId, namespace) {
    var bucket = hash("__" + namespace[0], visitorId, 1);
    return bucket !== null && bucket >= namespace[1] && bucket < namespace[2];
  }

  // ---- targeting: GrowthBook's condition syntax, as experiments/conditions.py evaluates it ----

  function isObject(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }

  function isOperatorObject(v) {
    if (!isObject(v)) return false;
    var keys = Object.keys(v);
    return keys.length > 0 && keys.every(function (k) { return k.charAt(0) === "$"; });
  }

  /** A dotted path into the attributes; a missing one reads as null. */
  function getPath(attributes, path) {
    var current = attributes;
    var parts = path.split(".");
    for (var i = 0; i < parts.length; i++) {
      if (!isObject(current) || !Object.prototype.hasOwnProperty.call(current, parts[i])) return null;
      current = current[parts[i]];
    }
    return current === undefined ? null : current;
  }

  function typeOf(v) {
    if (v === null || v === undefined) return "null";
    return Array.isArray(v) ? "array" : typeof v;
  }

  /** JSON equality: true is not 1, objects compare by content in any key order. */
  function same(a, b) {
    if (Array.isArray(a) || Array.isArray(b)) {
      return Array.isArray(a) && Array.isArray(b) && a.length === b.length &&
        a.every(function (x, i) { return same(x, b[i]); });
    }
    if (isObject(a) || isObject(b)) {
      if (!isObject(a) || !isObject(b)) return false;
      var ka = Object.keys(a), kb = Object.keys(b);
      return ka.length === kb.length && ka.every(function (k) {
        return Object.prototype.hasOwnProperty.call(b, k) && same(a[k], b[k]);
      });
    }
    return (a === undefined ? null : a) === (b === undefined ? null : b);
  }

  function sameScalar(a, b) {
    return !(Array.isArray(a) || isObject(a) || Array.isArray(b) || isObject(b)) && same(a, b);
  }

  function toNumber(v) {
    if (v === null || v === undefined) return 0;
    if (typeof v === "boolean" || typeof v === "number") return Number(v);
    if (typeof v === "string") return Number(v);
    return NaN;
  }

  /** -1, 0 or 1 as < and > order the two (strings as text, else numbers); null when unordered. */
  function order(a, b) {
    if (typeof a === "string" && typeof b === "string") return a < b ? -1 : a > b ? 1 : 0;
    var x = toNumber(a), y = toNumber(b);
    if (isNaN(x) || isNaN(y)) return null;
    return x < y ? -1 : x > y ? 1 : 0;
  }

  /** A version string that orders as text the way the versions order (see conditions.py). */
  function paddedVersion(v) {
    if (typeof v === "number") v = String(v);
    if (!v || typeof v !== "string") v = "0";
    var parts = v.replace(/^v|\+.*$/g, "").split(/[-.]/);
    if (parts.length === 3) parts.push("~");
    return parts.map(function (p) {
      return /^[0-9]+$/.test(p) ? ("     " + p).slice(-Math.max(5, p.length)) : p;
    }).join("-");
  }

  var regexCache = Object.create(null);

  function matches(actual, pattern, flags) {
    if (typeof pattern !== "string") return false;
    var key = flags + ":" + pattern;
    if (!(key in regexCache)) {
      try { regexCache[key] = new RegExp(pattern, flags); } catch (e) { regexCache[key] = null; }
    }
    return regexCache[key] !== null && regexCache[key].test(String(actual));
  }

  function lower(v) { return typeof v === "string" ? v.toLowerCase() : v; }

  function isIn(actual, expected, insensitive) {
    if (insensitive) {
      expected = expected.map(lower);
      actual = Array.isArray(actual) ? actual.map(lower) : lower(actual);
    }
    function member(v) { return expected.some(function (e) { return sameScalar(v, e); }); }
    return Array.isArray(actual) ? actual.some(member) : member(actual);
  }

  var ORDERS = { $lt: [-1], $lte: [-1, 0], $gt: [1], $gte: [0, 1] };
  var VERSION_ORDERS = { $veq: [0], $vne: [-1, 1], $vlt: [-1], $vlte: [-1, 0], $vgt: [1], $vgte: [0, 1] };

  function operatorHolds(op, actual, expected, groups) {
    switch (op) {
      case "$eq": return sameScalar(actual, expected);
      case "$ne": return !sameScalar(actual, expected);
      case "$in": case "$nin": case "$ini": case "$nini":
        if (!Array.isArray(expected)) return false;
        var found = isIn(actual, expected, op === "$ini" || op === "$nini");
        return op === "$in" || op === "$ini" ? found : !found;
      case "$inGroup": case "$notInGroup":
        var group = typeof expected === "string" && Array.isArray(groups[expected]) ? groups[expected] : [];
        return isIn(actual, group, false) === (op === "$inGroup");
      case "$all": case "$alli":
        if (!Array.isArray(actual) || !Array.isArray(expected)) return false;
        return expected.every(function (wanted) {
          return actual.some(function (a) {
            return op === "$alli" ? same(lower(wanted), lower(a)) : valueHolds(wanted, a, groups);
          });
        });
      case "$regex": return matches(actual, expected, "");
      case "$regexi": return matches(actual, expected, "i");
      case "$notRegex": return typeof expected === "string" && !matches(actual, expected, "");
      case "$notRegexi": return typeof expected === "string" && !matches(actual, expected, "i");
      case "$exists": return expected ? actual !== null : actual === null;
      case "$type": return typeOf(actual) === expected;
      case "$size": return Array.isArray(actual) && valueHolds(expected, actual.length, groups);
      case "$elemMatch":
        if (!Array.isArray(actual) || !isObject(expected)) return false;
        return actual.some(function (item) {
          return isOperatorObject(expected) ? valueHolds(expected, item, groups)
            : isObject(item) && evalCondition(item, expected, groups);
        });
      case "$not": return !valueHolds(expected, actual, groups);
    }
    if (has(ORDERS, op)) return ORDERS[op].indexOf(order(actual, expected)) >= 0;
    if (has(VERSION_ORDERS, op)) {
      var a = paddedVersion(actual), b = paddedVersion(expected);
      return VERSION_ORDERS[op].indexOf(a < b ? -1 : a > b ? 1 : 0) >= 0;
    }
    return false; // an unknown operator: definitions refuse it, a hand-made one fails closed
  }

  function valueHolds(expected, actual, groups) {
    if (isOperatorObject(expected)) {
      return Object.keys(expected).every(function (op) {
        return operatorHolds(op, actual, expected[op], groups);
      });
    }
    return same(expected, actual);
  }

  function anyOf(attributes, conditions, groups) {
    if (!Array.isArray(conditions) || !conditions.length) return true;
    return conditions.some(function (c) { return isObject(c) && evalCondition(attributes, c, groups); });
  }

  function allOf(attributes, conditions, groups) {
    if (!Array.isArray(conditions)) return true;
    return conditions.every(function (c) { return isObject(c) && evalCondition(attributes, c, groups); });
  }

  /** Whether the attributes satisfy a condition in GrowthBook's syntax (every key must hold). */
  function evalCondition(attributes, condition, groups) {
    groups = groups || {};
    for (var key in condition) {
      if (!has(condition, key)) continue;
      var expected = condition[key];
      if (key === "$or") { if (!anyOf(attributes, expected, groups)) return false; }
      else if (key === "$nor") { if (anyOf(attributes, expected, groups)) return false; }
      else if (key === "$and") { if (!allOf(attributes, expected, groups)) return false; }
      else if (key === "$not") { if (isObject(expected) && evalCondition(attributes, expected, groups)) return false; }
      else if (!valueHolds(expected, getPath(attributes, key), groups)) return false;
    }
    return true;
  }

  /** The value hashed for a definition: the visitor id, or the named attribute as text. */
  function hashUnit(definition, visitorId, attributes) {
    var name = definition.hash_attribute || "id";
    if (name === "id") return visitorId;
    var value = attributes && has(attributes, name) ? attributes[name] : null;
    if (value === null || value === undefined || value === "" || typeof value === "object") return null;
    return String(value);
  }

  function bucketed(definition, unit) {
    var bucket = hash(definition.seed || definition.key, unit, definition.hash_version || 2);
    if (bucket === null) return -1;
    var variants = definition.variants;
    var ranges = definition.ranges || bucketRanges(
      variants.length, definition.coverage, variants.map(function (v) { return v.weight; }));
    return chooseVariant(bucket, ranges);
  }

  function heldOut(holdout, visitorId, attributes) {
    if (!holdout || holdout.status !== "running") return false;
    var unit = hashUnit(holdout, visitorId, attributes);
    return unit === null || bucketed(holdout, unit) === 0;
  }

  /** What experiments/assignment.py decides: {variant, forced}; variant null when not enrolled. */
  function decision(definition, visitorId, attributes, byKey) {
    var none = { variant: null, forced: false };
    if (!definition) return none;
    if (definition.status === "stopped") return { variant: definition.winner || null, forced: false };
    if (definition.status !== "running") return none;
    if (definition.forced && has(definition.forced, visitorId)) {
      return { variant: definition.forced[visitorId], forced: true };
    }
    var unit = hashUnit(definition, visitorId, attributes);
    if (unit === null) return none;
    if (definition.holdout && heldOut(byKey && byKey[definition.holdout], visitorId, attributes)) return none;
    if (definition.namespace && !inNamespace(unit, definition.namespace)) return none;
    if (definition.condition && Object.keys(definition.condition).length) {
      var seen = Object.assign({}, attributes || {}, { id: visitorId });
      if (!evalCondition(seen, definition.condition)) return none;
    }
    var index = bucketed(definition, unit);
    return { variant: index < 0 ? null : definition.variants[index].key, forced: false };
  }

  /** The variant key a definition gives a visitor, or null: what the server would answer.
   * byKey (the snapshot by key) is needed only for an experiment covered by a holdout. */
  function decide(definition, visitorId, attributes, byKey) {
    return decision(definition, visitorId, attributes, byKey).variant;
  }

  // ---- small, never-throwing helpers ----

  function noop() {}

  function has(object, key) { return Object.prototype.hasOwnProperty.call(object, key); }

  function warn(message) {
    try { if (root.console) root.console.warn("[abacus] " + message); } catch (e) { /* ignore */ }
  }

  function debug(message) {
    if (config.debug) try { root.console.info("[abacus] " + message); } catch (e) { /* ignore */ }
  }

  function uuid() {
    try { if (root.crypto && root.crypto.randomUUID) return root.crypto.randomUUID(); } catch (e) { /* insecure context */ }
    var b = new Uint8Array(16);
    try {
      root.crypto.getRandomValues(b);
    } catch (e) {
      for (var i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  // Stands in for localStorage where it is blocked (sandboxed frames, privacy modes) or full.
  var memory = Object.create(null);
  var storageBroken = false;
  var storage = {
    get: function (key) {
      if (!storageBroken) {
        try {
          var raw = root.localStorage.getItem(key);
          return raw === null ? null : JSON.parse(raw);
        } catch (e) {
          storageBroken = true;
        }
      }
      return key in memory ? memory[key] : null;
    },
    set: function (key, value) {
      memory[key] = value;
      if (storageBroken) return;
      try { root.localStorage.setItem(key, JSON.stringify(value)); } catch (e) { storageBroken = true; }
    },
  };

  function readCookie(name) {
    try {
      var match = document.cookie.match(new RegExp("(?:^|;\\s*)" + name + "=([^;]*)"));
      return match ? decodeURIComponent(match[1]) : null;
    } catch (e) {
      return null;
    }
  }

  function writeCookie(name, value) {
    try {
      var cookie = name + "=" + encodeURIComponent(value) + "; Max-Age=" + COOKIE_MAX_AGE_SECONDS +
        "; Path=/; SameSite=Lax";
      if (config.cookieDomain) cookie += "; Domain=" + config.cookieDomain;
      if (root.location.protocol === "https:") cookie += "; Secure";
      document.cookie = cookie;
    } catch (e) { /* cookies blocked: the id lives in localStorage or memory */ }
  }

  function validVisitorId(id) {
    return typeof id === "string" && VISITOR_ID.test(id);
  }

  // ---- configuration and visitor id ----

  var config = { endpoint: "", mode: "server", visitorId: null, attributes: {}, timeoutMs: 5000,
    retryBaseMs: 1000, retryMaxMs: 30000, cookieDomain: null, debug: false, definitions: null,
    onExposure: null };
  var initialised = false;

  /** Where sdk.js was served from (its folder, so a path prefix is kept), else this origin. */
  function defaultEndpoint() {
    try {
      return scriptSrc ? new URL(".", scriptSrc).href : root.location.origin;
    } catch (e) {
      return "";
    }
  }

  function normaliseEndpoint(endpoint) {
    try {
      return new URL(endpoint || defaultEndpoint(), root.location.href).href.replace(/\/+$/, "");
    } catch (e) {
      return String(endpoint || "").replace(/\/+$/, "");
    }
  }

  function keyOf(kind) { return "abacus:" + kind + ":" + config.endpoint; }

  function ensureInit() { if (!initialised) init({}); }

  function init(options) {
    try {
      options = options || {};
      var before = config.visitorId;
      ["mode", "attributes", "timeoutMs", "retryBaseMs", "retryMaxMs", "cookieDomain", "debug",
        "onExposure"]
        .forEach(function (name) { if (options[name] !== undefined) config[name] = options[name]; });
      if (!initialised || options.endpoint !== undefined) config.endpoint = normaliseEndpoint(options.endpoint);
      if (config.mode !== "local" && config.mode !== "server") {
        warn("mode must be 'server' or 'local', got " + JSON.stringify(config.mode) + "; using 'server'");
        config.mode = "server";
      }
      if (options.definitions) config.definitions = indexDefinitions(options.definitions);
      if (options.visitorId !== undefined) {
        if (validVisitorId(options.visitorId)) config.visitorId = options.visitorId;
        else warn("visitorId must be " + LIMITS.visitor_id_rule + "; using the cookie");
      }
      if (!config.visitorId) config.visitorId = cookieVisitorId();
      if (config.visitorId !== before) answers = Object.create(null);
      initialised = true;
      if (loadQueue().length) flush();
    } catch (e) {
      warn("init failed: " + e);
    }
    return api;
  }

  function cookieVisitorId() {
    var id = readCookie(COOKIE) || storage.get("abacus:vid");
    if (!validVisitorId(id)) id = uuid();
    writeCookie(COOKIE, id); // refreshed on every visit: the year counts from the last one
    storage.set("abacus:vid", id);
    return id;
  }

  function visitorId() {
    try { ensureInit(); return config.visitorId; } catch (e) { return null; }
  }

  // ---- HTTP ----

  /** POST or GET with a timeout; resolves {status, body, retryAfterMs}, status 0 on network errors. */
  function request(path, body, keepalive) {
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = controller ? setTimeout(function () { controller.abort(); }, config.timeoutMs) : null;
    var options = { method: body === undefined ? "GET" : "POST", credentials: "omit", mode: "cors",
      signal: controller ? controller.signal : undefined };
    if (body !== undefined) {
      options.headers = { "Content-Type": "application/json" };
      options.body = JSON.stringify(body);
      options.keepalive = !!keepalive && options.body.length < 60000;
    }
    var started;
    try {
      started = root.fetch(config.endpoint + path, options);
    } catch (e) {
      started = Promise.reject(e);
    }
    return started.then(function (response) {
      var after = Number(response.headers.get("Retry-After"));
      return response.text().then(function (text) {
        var parsed = null;
        try { parsed = text ? JSON.parse(text) : null; } catch (e) { /* not JSON */ }
        return { status: response.status, body: parsed, retryAfterMs: after > 0 ? after * 1000 : 0 };
      });
    }).catch(function (e) {
      debug("request " + path + " failed: " + e);
      return { status: 0, body: null, retryAfterMs: 0 };
    }).then(function (result) {
      if (timer) clearTimeout(timer);
      return result;
    });
  }

  function retryable(status) {
    return status === 0 || status === 408 || status === 429 || status >= 500;
  }

  // ---- definitions snapshot (local decisions) ----

  function indexDefinitions(snapshot) {
    var byKey = Object.create(null);
    var list = snapshot && Array.isArray(snapshot.experiments) ? snapshot.experiments : [];
    list.forEach(function (d) { if (d && d.key) byKey[d.key] = d; });
    return byKey;
  }

  var definitionsPromise = null;

  /** The definition snapshot by key: fetched once per page (HTTP-cached), else the last one kept. */
  function definitions() {
    ensureInit();
    if (config.definitions) return Promise.resolve(config.definitions);
    if (!definitionsPromise) {
      definitionsPromise = request("/v1/definitions").then(function (result) {
        if (result.status === 200 && result.body) {
          storage.set(keyOf("definitions"), result.body);
          return indexDefinitions(result.body);
        }
        definitionsPromise = null; // try again next time
        var kept = storage.get(keyOf("definitions"));
        return kept ? indexDefinitions(kept) : null;
      });
    }
    return definitionsPromise;
  }

  // ---- assignment ----

  var answers = Object.create(null); // experiment key -> promise of its variant for this visitor
  var assigning = []; // assignments in flight: events wait for them so exposures land first

  /** ?abacus=KEY:VARIANT[,KEY:VARIANT] in the page URL: variants pinned for QA, never recorded. */
  function urlForced() {
    var out = Object.create(null);
    try {
      var given = new URL(root.location.href).searchParams.getAll("abacus");
      given.join(",").split(",").forEach(function (pair) {
        var parts = pair.split(":");
        if (parts.length === 2 && EXPERIMENT_KEY.test(parts[0]) && EXPERIMENT_KEY.test(parts[1])) {
          out[parts[0]] = parts[1];
        }
      });
    } catch (e) { /* no usable URL */ }
    return out;
  }

  var reported = Object.create(null); // experiment key -> visitor id already given to onExposure
  var silent = Object.create(null); // decided locally, not an exposure (pinned, a winner): same

  function reportExposures(answered) {
    if (typeof config.onExposure !== "function") return;
    Object.keys(answered).forEach(function (k) {
      var variant = answered[k];
      if (variant === null || reported[k] === config.visitorId || silent[k] === config.visitorId) return;
      reported[k] = config.visitorId;
      try {
        config.onExposure({ experiment: k, variant: variant, visitorId: config.visitorId });
      } catch (e) {
        warn("onExposure threw: " + e);
      }
    });
  }

  function assign(keys) {
    var many = Array.isArray(keys);
    try {
      ensureInit();
      var list = (many ? keys : [keys]).map(String);
      var pinned = urlForced();
      var missing = list.filter(function (k) {
        if (has(pinned, k)) {
          answers[k] = Promise.resolve(pinned[k]);
          return false;
        }
        if (EXPERIMENT_KEY.test(k)) return !(k in answers);
        warn("experiment keys are lowercase slugs, got " + JSON.stringify(k) + "; answering null");
        answers[k] = Promise.resolve(null);
        return false;
      });
      if (missing.length) {
        var resolving = resolveVariants(missing).catch(function (e) {
          warn("assign failed: " + e);
          return {};
        }).then(function (got) {
          reportExposures(got);
          return got;
        });
        missing.forEach(function (k) {
          var answer = resolving.then(function (got) {
            if (has(got, k)) return got[k];
            if (answers[k] === answer) delete answers[k]; // no answer at all: ask again next time
            return null;
          });
          answers[k] = answer;
        });
        assigning.push(resolving);
        resolving.then(function () {
          assigning = assigning.filter(function (p) { return p !== resolving; });
        });
      }
      return Promise.all(list.map(function (k) { return answers[k]; })).then(function (variants) {
        if (!many) return variants[0];
        var out = {};
        list.forEach(function (k, i) { out[k] = variants[i]; });
        return out;
      });
    } catch (e) {
      warn("assign failed: " + e);
      return Promise.resolve(many ? {} : null);
    }
  }

  function resolveVariants(keys) {
    var vid = config.visitorId;
    if (config.mode === "local") {
      return definitions().then(function (defs) {
        return defs ? decideLocally(keys, defs, vid) : askServer(keys, vid);
      });
    }
    return askServer(keys, vid);
  }

  function decideLocally(keys, defs, vid) {
    var out = Object.create(null);
    var exposed = [];
    keys.forEach(function (k) {
      var d = decision(defs[k], vid, config.attributes, defs);
      out[k] = d.variant;
      if (d.variant !== null && !d.forced && defs[k].status === "running") exposed.push(k);
      else silent[k] = vid;
    });
    if (exposed.length) {
      enqueue({ kind: "exposure", id: uuid(), visitor_id: vid, experiments: exposed,
        attributes: config.attributes, at: Date.now() });
      flush();
    }
    return out;
  }

  function askServer(keys, vid) {
    var payload = { visitor_id: vid, experiments: keys, attributes: config.attributes };
    return request("/v1/assign", payload, false).then(function (result) {
      if (result.status === 200 && result.body && result.body.assignments) {
        if (!result.body.recorded) {
          // The server answered from the hash but could not store the exposure: keep it queued.
          var exposed = keys.filter(function (k) {
            return has(result.body.assignments, k) && result.body.assignments[k] !== null;
          });
          if (exposed.length) {
            enqueue({ kind: "exposure", id: uuid(), visitor_id: vid, experiments: exposed,
              attributes: config.attributes, at: Date.now() });
            scheduleRetry(result.retryAfterMs);
          }
        }
        return Object.assign(Object.create(null), result.body.assignments);
      }
      // Unreachable, failing or refusing (e.g. an unknown key): decide from the snapshot.
      debug("assign answered " + result.status + "; deciding locally");
      return definitions().then(function (defs) { return defs ? decideLocally(keys, defs, vid) : {}; });
    });
  }

  // ---- the persistent queue of exposures and events ----

  function loadQueue() {
    var queue = storage.get(keyOf("queue"));
    if (!Array.isArray(queue)) return [];
    var oldest = Date.now() - MAX_AGE_MS;
    return queue.filter(function (item) { return item && item.at >= oldest; });
  }

  function saveQueue(queue) {
    storage.set(keyOf("queue"), queue.slice(-MAX_QUEUE));
  }

  function enqueue(item) {
    var queue = loadQueue();
    var duplicate = item.kind === "exposure" && queue.some(function (q) {
      return q.kind === "exposure" && q.visitor_id === item.visitor_id &&
        item.experiments.every(function (k) { return q.experiments.indexOf(k) >= 0; });
    });
    if (!duplicate) queue.push(item);
    saveQueue(queue);
  }

  function removeFromQueue(ids) {
    saveQueue(loadQueue().filter(function (item) { return ids.indexOf(item.id) < 0; }));
  }

  /** Split refused items so each is retried alone: one bad event or key cannot block the rest. */
  function splitInQueue(ids) {
    var out = [];
    loadQueue().forEach(function (item) {
      if (ids.indexOf(item.id) < 0) {
        out.push(item);
      } else if (item.kind === "exposure" && item.experiments.length > 1) {
        item.experiments.forEach(function (k) {
          out.push(Object.assign({}, item, { id: uuid(), experiments: [k], solo: true }));
        });
      } else {
        out.push(Object.assign({}, item, { solo: true }));
      }
    });
    saveQueue(out);
  }

  function eventBody(item) {
    var body = { visitor_id: item.visitor_id, event: item.event, event_id: item.id };
    if (item.value !== undefined) body.value = item.value;
    // Fresh events take the server's clock (no skew). Late ones keep their own time, unless they
    // waited behind an exposure, whose recorded time is the moment it finally reached the server.
    if (!item.server_time && Date.now() - item.at > LATE_MS) body.timestamp = item.at / 1000;
    return body;
  }

  /** The next group to send: consecutive exposures of one visitor, or consecutive events. */
  function nextGroup(queue) {
    var head = queue[0];
    var group = [head];
    for (var i = 1; i < queue.length && !head.solo && group.length < MAX_BATCH; i++) {
      var item = queue[i];
      if (item.kind !== head.kind || item.solo) break;
      if (item.kind === "exposure" && item.visitor_id !== head.visitor_id) break;
      group.push(item);
    }
    return group;
  }

  function sendGroup(group) {
    var ids = group.map(function (item) { return item.id; });
    if (group[0].kind === "exposure") {
      var keys = [];
      group.forEach(function (item) {
        item.experiments.forEach(function (k) { if (keys.indexOf(k) < 0) keys.push(k); });
      });
      var payload = { visitor_id: group[0].visitor_id, experiments: keys,
        attributes: group[0].attributes || {} };
      return request("/v1/assign", payload, true).then(function (r) {
        return r.status === 200 && r.body && r.body.recorded === false
          ? { ids: ids, status: 503, retryAfterMs: r.retryAfterMs } : { ids: ids, status: r.status,
            retryAfterMs: r.retryAfterMs };
      });
    }
    var single = group.length === 1;
    var body = single ? eventBody(group[0]) : { events: group.map(eventBody) };
    return request(single ? "/v1/track" : "/v1/track/batch", body, true).then(function (r) {
      return { ids: ids, status: r.status, retryAfterMs: r.retryAfterMs };
    });
  }

  var flushing = null;
  var again = false;
  var failures = 0;
  var retryTimer = null;
  var sending = []; // ids in flight, skipped by the page-hide beacon

  function scheduleRetry(retryAfterMs) {
    failures += 1;
    var delay = Math.min(config.retryMaxMs, config.retryBaseMs * Math.pow(2, failures - 1));
    delay = Math.max(delay / 2 + Math.random() * delay / 2, retryAfterMs || 0);
    if (retryTimer) clearTimeout(retryTimer);
    retryTimer = setTimeout(function () { retryTimer = null; flush(); }, delay);
    debug("retry #" + failures + " in " + Math.round(delay) + " ms");
  }

  async function drain() {
    if (assigning.length) await Promise.all(assigning);
    for (;;) {
      var queue = loadQueue();
      if (!queue.length) return;
      var group = nextGroup(queue);
      sending = group.map(function (item) { return item.id; });
      var outcome;
      try {
        outcome = await sendGroup(group);
      } finally {
        sending = [];
      }
      if (retryable(outcome.status)) {
        scheduleRetry(outcome.retryAfterMs);
        return;
      }
      failures = 0;
      if (outcome.status >= 200 && outcome.status < 300) {
        removeFromQueue(outcome.ids);
      } else if (group.length > 1 || (group[0].kind === "exposure" && group[0].experiments.length > 1)) {
        splitInQueue(outcome.ids);
      } else {
        warn("the server refused " + group[0].kind + " " + group[0].id + " (HTTP " + outcome.status + "); dropped");
        removeFromQueue(outcome.ids);
      }
    }
  }

  /** Send what is queued now (unless a retry is already scheduled); resolves the queue length. */
  function flush(force) {
    try {
      ensureInit();
      if (retryTimer && !force) return Promise.resolve(loadQueue().length);
      if (force && retryTimer) {
        clearTimeout(retryTimer);
        retryTimer = null;
      }
      if (flushing) {
        again = true;
        return flushing;
      }
      flushing = (async function () {
        try {
          do {
            again = false;
            await drain();
          } while (again && !retryTimer);
        } catch (e) {
          warn("flush failed: " + e);
        } finally {
          flushing = null;
        }
        return loadQueue().length;
      })();
      return flushing;
    } catch (e) {
      warn("flush failed: " + e);
      return Promise.resolve(0);
    }
  }

  // ---- tracking ----

  function track(event, properties) {
    try {
      ensureInit();
      properties = properties || {};
      if (typeof event !== "string" || !EVENT_NAME.test(event)) {
        warn("event must match " + EVENT_NAME + ", got " + JSON.stringify(event) + "; not sent");
        return Promise.resolve(false);
      }
      var item = { kind: "event", id: properties.eventId || uuid(), visitor_id: config.visitorId,
        event: event, at: Date.now() };
      if (!EVENT_ID.test(item.id)) {
        warn("eventId must match " + EVENT_ID + ", got " + JSON.stringify(item.id) + "; not sent");
        return Promise.resolve(false);
      }
      if (properties.value !== undefined && properties.value !== null) {
        var value = Number(properties.value);
        if (!isFinite(value) || Math.abs(value) > 1e12) {
          warn("value must be a finite number within +-1e12, got " + properties.value + "; not sent");
          return Promise.resolve(false);
        }
        item.value = value;
      }
      var queue = loadQueue();
      if (assigning.length || queue.some(function (q) { return q.kind === "exposure"; })) {
        item.server_time = true;
      }
      enqueue(item);
      return flush().then(function () {
        return !loadQueue().some(function (q) { return q.id === item.id; });
      });
    } catch (e) {
      warn("track failed: " + e);
      return Promise.resolve(false);
    }
  }

  /** On page hide, hand queued events not already in flight to a keepalive request (best effort:
   * they stay queued and a later page re-sends them; the server counts each event id once). */
  function beaconQueued() {
    try {
      if (!initialised) return;
      var events = loadQueue().filter(function (q) { return q.kind === "event" && sending.indexOf(q.id) < 0; });
      if (!events.length) return;
      request("/v1/track/batch", { events: events.slice(0, MAX_BATCH).map(eventBody) }, true).then(noop);
    } catch (e) { /* never into the host page */ }
  }

  /** Anti-flicker: hide the page (or selector) until the experiments are assigned, at most
   * timeoutMs (default 1000), then show it whatever happened. Resolves what assign() does. */
  function hideUntilAssigned(keys, options) {
    options = options || {};
    var timeoutMs = options.timeoutMs === undefined ? 1000 : Number(options.timeoutMs);
    var style = null;
    try {
      style = document.createElement("style");
      style.setAttribute("data-abacus-hide", "");
      style.textContent = (options.selector || "html") + "{opacity:0 !important}";
      (document.head || document.documentElement).appendChild(style);
    } catch (e) { style = null; }
    var shown = false;
    function show() {
      if (shown) return;
      shown = true;
      try { if (style && style.parentNode) style.parentNode.removeChild(style); } catch (e) { /* gone */ }
    }
    var timer = setTimeout(show, timeoutMs);
    return assign(keys).then(function (variants) {
      clearTimeout(timer);
      show();
      return variants;
    });
  }

  function pending() {
    try { ensureInit(); return loadQueue().length; } catch (e) { return 0; }
  }

  var api = {
    __abacus: true,
    version: "1.0.0",
    init: init,
    assign: assign,
    hideUntilAssigned: hideUntilAssigned,
    track: track,
    flush: function () { return flush(true); },
    visitorId: visitorId,
    pending: pending,
    definitions: function () {
      try { return definitions().catch(function () { return null; }); } catch (e) { return Promise.resolve(null); }
    },
    bucketing: {
      fnv1a32: fnv1a32,
      hash: hash,
      bucketRanges: bucketRanges,
      chooseVariant: chooseVariant,
      equalWeights: equalWeights,
      inNamespace: inNamespace,
      decide: decide,
    },
    targeting: {
      evalCondition: evalCondition,
      paddedVersion: paddedVersion,
    },
  };
  root.abacus = api;

  try {
    root.addEventListener("pagehide", beaconQueued);
    root.addEventListener("online", function () { if (initialised) flush(true); });
    // Deliver what an earlier page left queued (e.g. during an outage) as soon as possible.
    var leftover = storage.get("abacus:queue:" + normaliseEndpoint(""));
    if (Array.isArray(leftover) && leftover.length) init({});
  } catch (e) { /* never into the host page */ }
})(typeof window !== "undefined" ? window : this);
