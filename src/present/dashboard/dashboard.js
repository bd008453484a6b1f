// Tally's live dashboard (GET /). Plain browser JavaScript, no build step, no dependencies.
// It reads the stats API (API.md "Stats") with the site's secret key as a Bearer header: the key
// is asked for once and kept in sessionStorage, never put in a URL. Live figures come from
// GET /v1/stats/stream, read with fetch() because EventSource cannot send headers; each pushed
// change updates the summary at once and reloads the chart and rankings (at most every
// REFRESH_GAP_MS). Every value from the API reaches the page through textContent or an SVG
// attribute, never as markup.
(function () {
  'use strict';

  const KEY_STORAGE = 'tally.secretKey';
  const SVG_NS = 'http://www.w3.org/2000/svg';
  /** Least time between two reloads of the chart and rankings while figures keep changing. */
  const REFRESH_GAP_MS = 2000;
  /** Everything is reloaded this often even when nothing is pushed (time windows slide). */
  const IDLE_REFRESH_MS = 60000;
  /** While the stream is down, figures are polled this often instead. */
  const POLL_MS = 5000;
  const BACKOFF_FIRST_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  const TOP_LIMIT = 10;
  const EXPORT_LIMIT = 1000;

  const PERIODS = ['realtime', 'today', '24h', '7d', '30d'];
  /** The intervals offered for each period, the first being the default. */
  const INTERVALS = {
    realtime: ['minute'],
    today: ['hour', 'minute'],
    '24h': ['hour', 'minute'],
    '7d': ['day', 'hour'],
    '30d': ['day', 'hour'],
  };
  const CARDS = [
    { dimension: 'page', title: 'Top pages', column: 'Page', metric: 'pageviews' },
    { dimension: 'referrer', title: 'Referrers', column: 'Referrer', metric: 'pageviews' },
    { dimension: 'product', title: 'Products', column: 'Product', metric: 'clicks' },
    { dimension: 'event', title: 'Events', column: 'Event', metric: 'events' },
    { dimension: 'utm_source', title: 'UTM sources', column: 'utm_source', metric: 'pageviews' },
    { dimension: 'browser', title: 'Browsers', column: 'Browser', metric: 'pageviews' },
    { dimension: 'os', title: 'Operating systems', column: 'OS', metric: 'pageviews' },
    { dimension: 'device', title: 'Devices', column: 'Device', metric: 'pageviews' },
  ];
  const METRIC_LABEL = { pageviews: 'Pageviews', clicks: 'Clicks', events: 'Events', visitors: 'Visitors' };

  const $ = (id) => document.getElementById(id);
  const numberFormat = new Intl.NumberFormat('en-US');
  const compactFormat = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });

  const state = {
    key: null,
    period: 'today',
    interval: 'hour',
    /** Bumped on every period/interval/key change: answers of older requests are dropped. */
    generation: 0,
    refreshing: false,
    refreshAgain: false,
    refreshTimer: 0,
    lastRefresh: 0,
    streamAbort: null,
    streamUp: false,
    series: [],
    chartIndex: -1,
    /** The figures last shown, so a push that repeats them (the first after connecting) costs nothing. */
    shown: '',
    /** A reload was skipped while the tab was hidden: done when it is shown again. */
    staleWhileHidden: false,
  };

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  const isAuthError = (err) => err instanceof ApiError && (err.status === 401 || err.status === 403);

  // ---------- API ----------

  function apiUrl(path, params) {
    const url = new URL(path, location.origin);
    for (const [name, value] of Object.entries(params || {})) url.searchParams.set(name, String(value));
    return url.pathname + url.search;
  }

  async function failure(res) {
    let code = 'http_' + res.status;
    let message = 'The server answered ' + res.status + '.';
    try {
      const body = await res.json();
      if (body?.error) {
        code = String(body.error.code || code);
        message = String(body.error.message || message);
      }
    } catch (_) {
      // Not the API's JSON error (a proxy's page): keep the status.
    }
    return new ApiError(res.status, code, message);
  }

  async function request(path, params, key, signal) {
    const res = await fetch(apiUrl(path, params), {
      headers: { authorization: 'Bearer ' + key },
      cache: 'no-store',
      signal,
    });
    if (!res.ok) throw await failure(res);
    return res;
  }

  const api = async (path, params) => (await request(path, params, state.key)).json();

  // ---------- formatting ----------

  const formatCount = (n) => numberFormat.format(n);
  /** Summary figures stay short enough for their card; the exact number is in the title. */
  const formatFigure = (n) => (n < 100000 ? numberFormat.format(n) : compactFormat.format(n));
  const formatRate = (rate) => Math.round(rate * 100) + '%';

  function formatDuration(seconds) {
    if (seconds < 60) return (Number.isInteger(seconds) ? String(seconds) : seconds.toFixed(1)) + 's';
    const whole = Math.round(seconds);
    if (whole < 3600) return Math.floor(whole / 60) + 'm ' + String(whole % 60).padStart(2, '0') + 's';
    return Math.floor(whole / 3600) + 'h ' + String(Math.floor((whole % 3600) / 60)).padStart(2, '0') + 'm';
  }

  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

  // A point's time is written in the site's wall clock (with its offset, or Z for UTC sites):
  // the label shows those digits, so a Berlin site's day starts at 00:00 whatever the browser's zone.
  function formatTime(iso, interval, long) {
    const day = MONTHS[Number(iso.slice(5, 7)) - 1] + ' ' + Number(iso.slice(8, 10));
    const clock = iso.slice(11, 16);
    if (interval === 'day') return day;
    return long ? day + ', ' + clock : clock;
  }

  // ---------- DOM helpers ----------

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setFigure(node, value, text, exact) {
    node.dataset.value = String(value);
    node.textContent = text;
    if (exact !== undefined && exact !== text) node.title = exact;
    else node.removeAttribute('title');
  }

  // ---------- status lines ----------

  function showError(message) {
    const node = $('error');
    node.textContent = message;
    node.hidden = !message;
  }

  function setConnection(text, live) {
    $('connection').textContent = text;
    $('live').classList.toggle('is-live', live);
  }

  // ---------- summary and live visitors ----------

  const figuresKey = (summary, realtime) =>
    [
      realtime.visitors,
      summary.visitors,
      summary.pageviews,
      summary.events,
      summary.clicks,
      summary.bounceRate,
      summary.avgEngagedSeconds,
      summary.bots,
    ].join('|');

  function renderSummary(summary) {
    for (const name of ['visitors', 'pageviews', 'events', 'clicks']) {
      setFigure($('fig-' + name), summary[name], formatFigure(summary[name]), formatCount(summary[name]));
    }
    setFigure($('fig-bounceRate'), summary.bounceRate, formatRate(summary.bounceRate));
    setFigure($('fig-avgEngagedSeconds'), summary.avgEngagedSeconds, formatDuration(summary.avgEngagedSeconds));
    // Bots are left out of every figure; saying how many keeps the figures honest. No line at 0.
    const bots = summary.bots ?? 0;
    $('bots').hidden = bots === 0;
    $('bots').dataset.value = String(bots);
    $('bots').textContent = bots === 1 ? '1 bot page view or event filtered' : formatCount(bots) + ' bot page views and events filtered';
  }

  function renderRealtime(realtime) {
    setFigure($('live-count'), realtime.visitors, formatCount(realtime.visitors));
    $('live-label').textContent = realtime.visitors === 1 ? 'visitor now' : 'visitors now';
  }

  // ---------- rankings ----------

  function buildCards() {
    const holder = $('tops');
    for (const card of CARDS) {
      const id = 'top-' + card.dimension;
      const section = el('section', { class: 'card', id, 'aria-labelledby': id + '-title' });
      const head = el('div', { class: 'card-head' });
      head.append(el('h2', { id: id + '-title' }, card.title));
      const exportButton = el('button', { type: 'button', class: 'small', 'aria-label': 'Export ' + card.title + ' as CSV' }, 'CSV');
      exportButton.addEventListener('click', () =>
        download(
          { dimension: card.dimension, metric: card.metric, limit: EXPORT_LIMIT },
          'tally-' + card.dimension + '-' + state.period + '.csv',
        ),
      );
      head.append(exportButton);
      const table = el('table', { class: 'ranking' });
      table.append(el('caption', { class: 'visually-hidden' }, card.title + ' by ' + METRIC_LABEL[card.metric].toLowerCase()));
      const headRow = el('tr');
      headRow.append(el('th', { scope: 'col' }, card.column), el('th', { scope: 'col', class: 'num' }, METRIC_LABEL[card.metric]));
      const thead = el('thead');
      thead.append(headRow);
      table.append(thead, el('tbody'));
      section.append(head, table);
      holder.append(section);
    }
  }

  function renderTop(dimension, results) {
    const body = document.querySelector('#top-' + dimension + ' tbody');
    const rows = [];
    const max = results.reduce((m, r) => Math.max(m, r.count), 0);
    for (const r of results) {
      const row = el('tr');
      const name = el('td', { class: 'value' });
      const bar = el('span', { class: 'share', 'aria-hidden': 'true' });
      bar.style.width = (max > 0 ? (r.count / max) * 100 : 0).toFixed(1) + '%';
      const label = el('span', { class: 'label', title: r.value }, r.value === '' ? '(none)' : r.value);
      name.append(bar, label);
      const count = el('td', { class: 'num' }, formatCount(r.count));
      count.dataset.value = String(r.count);
      row.append(name, count);
      rows.push(row);
    }
    if (rows.length === 0) {
      const row = el('tr', { class: 'empty' });
      row.append(el('td', { colspan: '2' }, 'No data for this period'));
      rows.push(row);
    }
    body.replaceChildren(...rows);
  }

  // ---------- chart ----------

  /** Grid lines at a round whole step (1, 2 or 5 times a power of ten): counts have no halves. */
  function yScale(peak) {
    const raw = Math.max(1, peak / 4);
    const magnitude = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((f) => f * magnitude).find((s) => s >= raw);
    return { step, top: Math.max(step, Math.ceil(peak / step) * step) };
  }

  function drawChart() {
    const holder = $('chart');
    // The period's whole span sets the time axis; lines stop at the current interval (a day
    // shown before it ends has no future to draw).
    const slots = state.series;
    const points = pastPoints(slots);
    const width = Math.max(280, holder.clientWidth);
    const height = 240;
    const m = { top: 12, right: 24, bottom: 28, left: 48 };
    const w = width - m.left - m.right;
    const h = height - m.top - m.bottom;
    const peak = points.reduce((max, p) => Math.max(max, p.pageviews, p.visitors), 0);
    const { step: yStep, top } = yScale(peak);
    const x = (i) => m.left + (slots.length <= 1 ? w / 2 : (i / (slots.length - 1)) * w);
    const y = (v) => m.top + h - (v / top) * h;

    const chart = svg('svg', { width, height, viewBox: '0 0 ' + width + ' ' + height, class: 'chart-svg', tabindex: '0', role: 'img' });
    const total = (key) => points.reduce((sum, p) => sum + p[key], 0);
    chart.append(
      svg(
        'title',
        {},
        'Pageviews and visitors per ' +
          state.interval +
          ': ' +
          formatCount(total('pageviews')) +
          ' pageviews in ' +
          points.length +
          ' ' +
          state.interval +
          's. Use the arrow keys to read each ' +
          state.interval +
          '.',
      ),
    );

    for (let value = 0; value <= top; value += yStep) {
      chart.append(svg('line', { x1: m.left, x2: width - m.right, y1: y(value), y2: y(value), class: 'grid' }));
      chart.append(svg('text', { x: m.left - 8, y: y(value) + 4, class: 'axis', 'text-anchor': 'end' }, formatCount(value)));
    }
    // Time labels at a whole step of points, so they are evenly spaced and as many as fit.
    // Hours or minutes over more than a day need the date too, or the clock times repeat.
    const multiDay =
      state.interval !== 'day' && slots.length > 1 && Date.parse(slots[slots.length - 1].t) - Date.parse(slots[0].t) >= 86400000;
    const step = Math.max(1, Math.ceil(slots.length / Math.max(2, Math.floor(w / (multiDay ? 120 : 80)))));
    for (let i = 0; i < slots.length; i += step) {
      chart.append(
        svg('text', { x: x(i), y: height - 8, class: 'axis', 'text-anchor': 'middle' }, formatTime(slots[i].t, state.interval, multiDay)),
      );
    }

    if (points.length > 0) {
      const line = (key) => points.map((p, i) => (i === 0 ? 'M' : 'L') + x(i).toFixed(1) + ',' + y(p[key]).toFixed(1)).join('');
      const area = line('pageviews') + 'L' + x(points.length - 1).toFixed(1) + ',' + y(0) + 'L' + x(0).toFixed(1) + ',' + y(0) + 'Z';
      chart.append(svg('path', { d: area, class: 'area-pageviews' }));
      chart.append(svg('path', { d: line('pageviews'), class: 'line-pageviews' }));
      chart.append(svg('path', { d: line('visitors'), class: 'line-visitors' }));
      if (points.length <= 60) {
        for (const [i, p] of points.entries())
          chart.append(svg('circle', { cx: x(i), cy: y(p.pageviews), r: 2.5, class: 'dot-pageviews' }));
      }
    }

    const cursor = svg('g', { class: 'cursor' });
    chart.append(cursor);
    const overlay = svg('rect', { x: m.left, y: m.top, width: w, height: h, class: 'overlay' });
    chart.append(overlay);

    const show = (i) => {
      state.chartIndex = i;
      cursor.replaceChildren();
      if (i < 0 || i >= points.length) {
        $('chart-readout').textContent = '';
        return;
      }
      const p = points[i];
      cursor.append(
        svg('line', { x1: x(i), x2: x(i), y1: m.top, y2: m.top + h, class: 'cursor-line' }),
        svg('circle', { cx: x(i), cy: y(p.pageviews), r: 4, class: 'cursor-pageviews' }),
        svg('circle', { cx: x(i), cy: y(p.visitors), r: 4, class: 'cursor-visitors' }),
      );
      $('chart-readout').textContent =
        formatTime(p.t, state.interval, true) +
        ' UTC: ' +
        formatCount(p.pageviews) +
        ' pageviews, ' +
        formatCount(p.visitors) +
        ' visitors';
    };
    const nearest = (event) => {
      const box = chart.getBoundingClientRect();
      const px = event.clientX - box.left;
      if (slots.length <= 1) return 0;
      return Math.max(0, Math.min(points.length - 1, Math.round(((px - m.left) / w) * (slots.length - 1))));
    };
    overlay.addEventListener('pointermove', (event) => show(nearest(event)));
    overlay.addEventListener('pointerleave', () => show(-1));
    chart.addEventListener('keydown', (event) => {
      const last = points.length - 1;
      const at = state.chartIndex < 0 ? last : state.chartIndex;
      const next = { ArrowLeft: at - 1, ArrowRight: at + 1, Home: 0, End: last }[event.key];
      if (next === undefined || last < 0) return;
      event.preventDefault();
      show(Math.max(0, Math.min(last, next)));
    });
    // A redraw (new figures, a resize) keeps a keyboard reader's place.
    const wasFocused = holder.contains(document.activeElement);
    const kept = state.chartIndex;
    holder.replaceChildren(chart);
    if (wasFocused) {
      chart.focus();
      if (kept >= 0) show(Math.min(kept, points.length - 1));
    }
    chart.addEventListener('blur', () => show(-1));
  }

  const pastPoints = (series) => {
    const now = Date.now();
    return series.filter((p) => Date.parse(p.t) <= now);
  };

  function renderSeries(pageviews, visitors) {
    state.series = pageviews.map((p, i) => ({ t: p.t, pageviews: p.count, visitors: visitors[i] ? visitors[i].count : 0 }));
    drawChart();
    const rows = pastPoints(state.series).map((p) => {
      const row = el('tr');
      row.append(
        el('th', { scope: 'row' }, formatTime(p.t, state.interval, true)),
        el('td', { class: 'num' }, formatCount(p.pageviews)),
        el('td', { class: 'num' }, formatCount(p.visitors)),
      );
      return row;
    });
    $('chart-table').tBodies[0].replaceChildren(...rows);
  }

  // ---------- loading ----------

  /** Everything the page shows, read again; a change of period while it runs drops its answers. */
  async function refresh() {
    if (!state.key) return;
    // Nobody looks at a hidden tab: the pushed summary keeps it current, the rest waits.
    if (document.hidden) {
      state.staleWhileHidden = true;
      return;
    }
    if (state.refreshing) {
      state.refreshAgain = true;
      return;
    }
    state.refreshing = true;
    const generation = state.generation;
    const period = { period: state.period };
    try {
      const [summary, realtime, pageviews, visitors, ...tops] = await Promise.all([
        api('/v1/stats/summary', period),
        api('/v1/stats/realtime'),
        api('/v1/stats/timeseries', { ...period, metric: 'pageviews', interval: state.interval }),
        api('/v1/stats/timeseries', { ...period, metric: 'visitors', interval: state.interval }),
        ...CARDS.map((card) => api('/v1/stats/top', { ...period, dimension: card.dimension, metric: card.metric, limit: TOP_LIMIT })),
      ]);
      if (generation !== state.generation) return;
      state.shown = figuresKey(summary, realtime);
      renderSummary(summary);
      renderRealtime(realtime);
      renderSeries(pageviews.results, visitors.results);
      CARDS.forEach((card, i) => renderTop(card.dimension, tops[i].results));
      showError('');
      $('updated').textContent = 'Updated ' + new Date().toISOString().slice(11, 19) + '.';
    } catch (err) {
      if (generation !== state.generation) return;
      if (isAuthError(err)) return signOut(err.message);
      showError(
        'Could not load the figures: ' + (err instanceof ApiError ? err.message + ' (' + err.code + ')' : 'the server cannot be reached.'),
      );
    } finally {
      state.lastRefresh = Date.now();
      state.refreshing = false;
      if (state.refreshAgain) {
        state.refreshAgain = false;
        // A new period or interval is wanted at once; more pushed changes can wait their turn.
        if (generation !== state.generation) void refresh();
        else scheduleRefresh();
      }
    }
  }

  /** A reload soon, but not more often than every REFRESH_GAP_MS however fast changes come. */
  function scheduleRefresh() {
    if (state.refreshTimer) return;
    const wait = Math.max(0, state.lastRefresh + REFRESH_GAP_MS - Date.now());
    state.refreshTimer = setTimeout(() => {
      state.refreshTimer = 0;
      void refresh();
    }, wait);
  }

  // ---------- live stream ----------

  /** Server-Sent Events framing: calls onEvent(name, data) for each complete event. */
  function sseParser(onEvent) {
    let buffer = '';
    let data = [];
    let name = '';
    return (chunk) => {
      buffer += chunk;
      for (;;) {
        const match = /\r\n|\r|\n/.exec(buffer);
        // A lone CR at the end may be the first half of a CRLF: wait for more.
        if (!match || (match[0] === '\r' && match.index === buffer.length - 1)) return;
        const line = buffer.slice(0, match.index);
        buffer = buffer.slice(match.index + match[0].length);
        if (line === '') {
          if (data.length > 0) onEvent(name || 'message', data.join('\n'));
          data = [];
          name = '';
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'data') data.push(value);
        else if (field === 'event') name = value;
      }
    };
  }

  function onStreamEvent(name, data) {
    if (name !== 'stats') return;
    let figures;
    try {
      figures = JSON.parse(data);
    } catch (_) {
      return;
    }
    if (!figures.summary || !figures.realtime) return;
    const key = figuresKey(figures.summary, figures.realtime);
    if (key === state.shown) return;
    state.shown = key;
    renderSummary(figures.summary);
    renderRealtime(figures.realtime);
    // Every figure the rankings and chart count also moves the summary: reload them too.
    scheduleRefresh();
  }

  function stopStream() {
    if (state.streamAbort) state.streamAbort.abort();
    state.streamAbort = null;
    state.streamUp = false;
  }

  /** Reads the stream until it ends, then reconnects after a growing pause (reset by a good read). */
  function startStream() {
    stopStream();
    const abort = new AbortController();
    state.streamAbort = abort;
    const key = state.key;
    const period = state.period;
    let delay = BACKOFF_FIRST_MS;

    const wait = (ms) =>
      new Promise((resolve) => {
        const timer = setTimeout(resolve, ms);
        abort.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        });
      });

    (async () => {
      while (!abort.signal.aborted) {
        try {
          setConnection('Connecting…', false);
          const res = await request('/v1/stats/stream', { period }, key, abort.signal);
          state.streamUp = true;
          setConnection('Live', true);
          const feed = sseParser((name, data) => {
            // A chunk read just before a period change must not paint the old period's figures.
            if (abort.signal.aborted) return;
            delay = BACKOFF_FIRST_MS;
            onStreamEvent(name, data);
          });
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            feed(value);
          }
        } catch (err) {
          if (abort.signal.aborted) return;
          if (isAuthError(err)) return signOut(err.message);
        }
        if (abort.signal.aborted) return;
        state.streamUp = false;
        const pause = Math.round(delay * (0.75 + Math.random() * 0.5));
        setConnection('Live updates interrupted; reconnecting in ' + Math.ceil(pause / 1000) + ' s', false);
        await wait(pause);
        delay = Math.min(BACKOFF_MAX_MS, delay * 2);
      }
    })();
  }

  // ---------- exports ----------

  async function download(params, filename) {
    try {
      const res = await request('/v1/stats/export', { ...params, period: state.period, format: 'csv' }, state.key);
      const url = URL.createObjectURL(await res.blob());
      const link = el('a', { href: url, download: filename });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) {
      if (isAuthError(err)) return signOut(err.message);
      showError('Could not export: ' + (err instanceof ApiError ? err.message : 'the server cannot be reached.'));
    }
  }

  // ---------- period and interval ----------

  function fillIntervals() {
    const select = $('interval');
    const options = INTERVALS[state.period];
    if (!options.includes(state.interval)) state.interval = options[0];
    select.replaceChildren(...options.map((interval) => el('option', { value: interval }, interval[0].toUpperCase() + interval.slice(1))));
    select.value = state.interval;
    select.disabled = options.length === 1;
  }

  function choosePeriod(period) {
    state.period = period;
    state.interval = INTERVALS[period][0];
    state.generation += 1;
    state.shown = '';
    for (const input of document.querySelectorAll('input[name="period"]')) input.checked = input.value === period;
    fillIntervals();
    history.replaceState(null, '', '#' + period);
    void refresh();
    startStream();
  }

  // ---------- key ----------

  function showLogin(message) {
    $('dashboard').hidden = true;
    $('live').hidden = true;
    $('forget').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    $('key').setAttribute('aria-invalid', message ? 'true' : 'false');
    $('key').value = '';
    $('key').focus();
  }

  function signOut(message) {
    stopStream();
    state.generation += 1;
    state.key = null;
    sessionStorage.removeItem(KEY_STORAGE);
    showLogin(message ? 'The secret key was not accepted: ' + message : '');
  }

  function openDashboard(key) {
    state.key = key;
    $('login').hidden = true;
    $('dashboard').hidden = false;
    $('live').hidden = false;
    $('forget').hidden = false;
    choosePeriod(state.period);
  }

  async function onLogin(event) {
    event.preventDefault();
    const key = $('key').value.trim();
    // Keys are printable ASCII; anything else could not even be sent as a header.
    const problem = !key
      ? 'Enter the secret key.'
      : /^[\x21-\x7e]+$/.test(key)
        ? ''
        : 'A secret key has no spaces or special characters: paste it as printed.';
    if (problem) {
      $('login-error').textContent = problem;
      $('key').setAttribute('aria-invalid', 'true');
      return;
    }
    $('login-submit').disabled = true;
    $('login-error').textContent = '';
    try {
      await request('/v1/stats/realtime', {}, key);
      sessionStorage.setItem(KEY_STORAGE, key);
      openDashboard(key);
      $('title').focus();
    } catch (err) {
      $('key').setAttribute('aria-invalid', 'true');
      $('login-error').textContent = isAuthError(err)
        ? 'The secret key was not accepted: ' + err.message
        : 'The server cannot be reached: ' + (err instanceof ApiError ? err.message : 'check the connection.');
    } finally {
      $('login-submit').disabled = false;
    }
  }

  // ---------- start ----------

  function start() {
    buildCards();
    const fromHash = location.hash.slice(1);
    if (PERIODS.includes(fromHash)) state.period = fromHash;
    $('login-form').addEventListener('submit', onLogin);
    $('forget').addEventListener('click', () => signOut(''));
    for (const input of document.querySelectorAll('input[name="period"]')) {
      input.addEventListener('change', () => input.checked && choosePeriod(input.value));
    }
    document.addEventListener('visibilitychange', () => {
      if (document.hidden || !state.staleWhileHidden) return;
      state.staleWhileHidden = false;
      void refresh();
    });
    window.addEventListener('hashchange', () => {
      const period = location.hash.slice(1);
      if (state.key && PERIODS.includes(period) && period !== state.period) choosePeriod(period);
    });
    $('interval').addEventListener('change', (event) => {
      state.interval = event.target.value;
      state.generation += 1;
      void refresh();
    });
    $('export-pageviews').addEventListener('click', () =>
      download({ metric: 'pageviews', interval: state.interval }, 'tally-pageviews-' + state.period + '.csv'),
    );
    $('export-visitors').addEventListener('click', () =>
      download({ metric: 'visitors', interval: state.interval }, 'tally-visitors-' + state.period + '.csv'),
    );
    let resizeFrame = 0;
    new ResizeObserver(() => {
      cancelAnimationFrame(resizeFrame);
      resizeFrame = requestAnimationFrame(() => state.key && drawChart());
    }).observe($('chart'));
    setInterval(() => {
      if (!state.key) return;
      const since = Date.now() - state.lastRefresh;
      if ((!state.streamUp && since >= POLL_MS) || since >= IDLE_REFRESH_MS) void refresh();
    }, 1000);

    const saved = sessionStorage.getItem(KEY_STORAGE);
    if (saved) openDashboard(saved);
    else showLogin('');
  }

  start();
})();
