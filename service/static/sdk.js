/*! Abacus browser SDK: a stable visitor id, assignment (server or local decision), and event
 * tracking that survives page unloads, outages and retries without double counting.
 * Dependency-free, ES2017. Public surface: window.abacus (see docs/sdk.md). */
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
  var scriptSrc = document.currentScript && document.currentScript.src;

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

  /** The variant key a definition gives a visitor, or null: what the server would answer. */
  function decide(definition, visitorId) {
    if (!definition) return null;
    if (definition.status === "stopped") return definition.winner || null;
    if (definition.status !== "running") return null;
    var bucket = hash(definition.seed || definition.key, visitorId, definition.hash_version || 2);
    if (bucket === null) return null;
    var variants = definition.variants;
    var ranges = definition.ranges || bucketRanges(
      variants.length, definition.coverage, variants.map(function (v) { return v.weight; }));
    var index = chooseVariant(bucket, ranges);
    return index < 0 ? null : variants[index].key;
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
    retryBaseMs: 1000, retryMaxMs: 30000, cookieDomain: null, debug: false, definitions: null };
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
      ["mode", "attributes", "timeoutMs", "retryBaseMs", "retryMaxMs", "cookieDomain", "debug"]
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

  function assign(keys) {
    var many = Array.isArray(keys);
    try {
      ensureInit();
      var list = (many ? keys : [keys]).map(String);
      var missing = list.filter(function (k) {
        if (EXPERIMENT_KEY.test(k)) return !(k in answers);
        warn("experiment keys are lowercase slugs, got " + JSON.stringify(k) + "; answering null");
        answers[k] = Promise.resolve(null);
        return false;
      });
      if (missing.length) {
        var resolving = resolveVariants(missing).catch(function (e) {
          warn("assign failed: " + e);
          return {};
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
      out[k] = decide(defs[k], vid);
      if (out[k] !== null && defs[k].status === "running") exposed.push(k);
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

  function pending() {
    try { ensureInit(); return loadQueue().length; } catch (e) { return 0; }
  }

  var api = {
    __abacus: true,
    version: "1.0.0",
    init: init,
    assign: assign,
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
