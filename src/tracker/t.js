/*! Tally browser tracker — served as GET /t.js. No dependencies, no cookies.
 *
 *   <script defer src="https://tally.example/t.js" data-write-key="twk_..."></script>
 *
 * Attributes: data-write-key (required); data-api (collector origin, default: where t.js came
 * from); data-storage="localStorage" to keep an anonymous id across visits — only set it once
 * the visitor allowed it. Without it nothing is stored, no anonymous id is sent, and the server
 * counts the visitor under a daily-salted hash of site + IP + user agent.
 *
 * API: tally.track(event, properties), tally.page(), tally.identify(userId, traits),
 * tally.allowStorage() (after consent). Before t.js has loaded, calls can be queued with
 *   <script>window.tally=window.tally||function(){(tally.q=tally.q||[]).push(arguments)}</script>
 *   tally('identify', 'user-1'); tally('track', 'Signed Up');
 */
(function () {
  'use strict';
  var w = window;
  var d = document;
  var existing = w.tally;
  if (existing && existing.loaded) return;

  var script = d.currentScript;
  var writeKey = script && script.getAttribute('data-write-key');
  if (!writeKey) {
    if (w.console) w.console.warn('tally: t.js needs data-write-key');
    return;
  }
  var api = (script.getAttribute('data-api') || new URL(script.src, d.baseURI).origin).replace(/\/$/, '');
  var endpoint = api + '/v1/batch';
  var LIBRARY = { name: 'tally.js', version: '1' };
  var ID_KEY = 'tally_aid';
  var USER_KEY = 'tally_uid';
  // Beacons and keepalive fetches carry at most 64 KB (bytes of UTF-8): stay under it.
  var MAX_BODY = 60000;
  var FLUSH_MS = 1000;
  var MAX_RETRIES = 3;
  // The collector's limit is 32 KB a message: one over it would get its whole batch refused.
  var MAX_MESSAGE = 30000;
  var MAX_NAME = 200;

  var storageAllowed = script.getAttribute('data-storage') === 'localStorage';
  var anonymousId = null;
  var userId = null;
  var queue = [];
  var timer = null;

  function uuid() {
    if (w.crypto && w.crypto.randomUUID) return w.crypto.randomUUID();
    var b = new Uint8Array(16);
    w.crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map
      .call(b, function (x) {
        return (x + 0x100).toString(16).slice(1);
      })
      .join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  function load(key) {
    try {
      return w.localStorage.getItem(key);
    } catch (e) {
      return null;
    }
  }
  function save(key, value) {
    try {
      w.localStorage.setItem(key, value);
    } catch (e) {
      /* storage blocked: stay in memory */
    }
  }

  function useStorage() {
    storageAllowed = true;
    anonymousId = load(ID_KEY);
    if (!anonymousId) {
      anonymousId = uuid();
      save(ID_KEY, anonymousId);
    }
    if (userId) save(USER_KEY, userId);
    else userId = load(USER_KEY);
  }

  function pageFacts() {
    var l = w.location;
    return { url: l.href, path: l.pathname, search: l.search, title: d.title, referrer: d.referrer };
  }

  var encoder = new TextEncoder();
  function bytes(value) {
    return encoder.encode(JSON.stringify(value)).length;
  }

  function enqueue(message) {
    message.messageId = uuid();
    message.timestamp = new Date().toISOString();
    if (userId) message.userId = userId;
    if (anonymousId) message.anonymousId = anonymousId;
    message.context = { library: LIBRARY, page: pageFacts(), locale: navigator.language };
    if (bytes(message) > MAX_MESSAGE) {
      if (w.console) w.console.warn('tally: message too large, not sent', message.type, message.event);
      return;
    }
    queue.push(message);
    if (!timer) timer = setTimeout(flush, FLUSH_MS);
  }

  // A beacon first (it survives the page); if the browser refuses it, a keepalive fetch, retried
  // on network errors and 5xx/429 with the same messageIds, so a batch that did arrive counts once.
  function post(batch, attempt) {
    var sentAt = new Date().toISOString();
    for (var i = 0; i < batch.length; i++) batch[i].sentAt = sentAt;
    // text/plain keeps it a simple request (no CORS preflight); the write key rides in the body.
    var body = JSON.stringify({ writeKey: writeKey, batch: batch });
    if (attempt === 0 && navigator.sendBeacon && navigator.sendBeacon(endpoint, body)) return;
    var retry = function () {
      if (attempt < MAX_RETRIES)
        setTimeout(function () {
          post(batch, attempt + 1);
        }, 2000 * Math.pow(2, attempt));
    };
    w.fetch(endpoint, { method: 'POST', body: body, keepalive: true, credentials: 'omit', headers: { 'Content-Type': 'text/plain' } })
      .then(function (res) {
        // Other 4xx: the batch is refused as a whole and would be again.
        if (res.status >= 500 || res.status === 429) retry();
      })
      .catch(retry);
  }

  function flush() {
    if (timer) clearTimeout(timer);
    timer = null;
    while (queue.length > 0) {
      var batch = [];
      var size = 0;
      while (queue.length > 0) {
        var n = bytes(queue[0]) + 40;
        if (batch.length > 0 && size + n > MAX_BODY) break;
        batch.push(queue.shift());
        size += n;
      }
      post(batch, 0);
    }
  }

  // Visible time on the current page; reported as a `Page Engaged` track when the page is left,
  // hidden, or replaced by an SPA navigation.
  var engagedMs = 0;
  var visibleSince = d.visibilityState === 'visible' ? Date.now() : null;
  var engagedPage = pageFacts();

  /** Adds the visible time so far; `visible` says whether the clock keeps running. */
  function reportEngagement(visible) {
    var now = Date.now();
    if (visibleSince !== null) engagedMs += now - visibleSince;
    visibleSince = visible ? now : null;
    if (engagedMs <= 0) return;
    var message = {
      type: 'track',
      event: 'Page Engaged',
      properties: { engaged_ms: engagedMs, path: engagedPage.path, url: engagedPage.url },
    };
    engagedMs = 0;
    enqueue(message);
    // The engagement belongs to the page it was measured on.
    message.context.page = engagedPage;
  }

  var lastPath = null;
  function page() {
    engagedPage = pageFacts();
    lastPath = w.location.pathname + w.location.search;
    enqueue({ type: 'page', name: d.title.slice(0, MAX_NAME) || undefined, properties: pageFacts() });
  }

  function navigated() {
    if (w.location.pathname + w.location.search === lastPath) return;
    reportEngagement(d.visibilityState === 'visible');
    page();
  }

  var tally = function () {
    var args = Array.prototype.slice.call(arguments);
    var fn = tally[args[0]];
    if (typeof fn === 'function') fn.apply(tally, args.slice(1));
  };
  tally.loaded = true;
  tally.track = function (event, properties) {
    if (typeof event !== 'string' || event === '' || event.length > MAX_NAME) {
      if (w.console) w.console.warn('tally: track needs an event name of 1 to ' + MAX_NAME + ' characters');
      return;
    }
    enqueue({ type: 'track', event: event, properties: properties || {} });
  };
  tally.page = page;
  tally.identify = function (id, traits) {
    if (id === undefined || id === null || id === '' || String(id).length > 256) return;
    userId = String(id);
    if (storageAllowed) save(USER_KEY, userId);
    enqueue({ type: 'identify', traits: traits || {} });
  };
  tally.allowStorage = useStorage;
  tally.flush = flush;

  if (storageAllowed) useStorage();

  // SPA navigation: pushState / replaceState do not fire events; wrap them.
  ['pushState', 'replaceState'].forEach(function (name) {
    var original = w.history[name];
    w.history[name] = function () {
      var result = original.apply(this, arguments);
      navigated();
      return result;
    };
  });
  w.addEventListener('popstate', navigated);

  // Leaving fires pagehide and visibilitychange (in either order): the first reports, the
  // second finds the clock stopped. A page restored from the back-forward cache starts it again.
  d.addEventListener('visibilitychange', function () {
    if (d.visibilityState === 'visible') {
      visibleSince = Date.now();
      return;
    }
    reportEngagement(false);
    flush();
  });
  w.addEventListener('pagehide', function () {
    reportEngagement(false);
    flush();
  });
  w.addEventListener('pageshow', function (event) {
    if (event.persisted && d.visibilityState === 'visible') visibleSince = Date.now();
  });

  w.tally = tally;
  var queued = (existing && existing.q) || [];
  for (var i = 0; i < queued.length; i++) tally.apply(null, queued[i]);
  page();
})();
