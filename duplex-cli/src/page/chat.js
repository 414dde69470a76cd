'use strict';
(() => {
  // ---- settings -----------------------------------------------------------
  const BACKOFF_MIN_MS = 250;      // first retry delay
  const BACKOFF_MAX_MS = 8000;     // cap of the doubling
  const JITTER = 0.2;              // +-20 % on every delay
  const CONNECT_TIMEOUT_MS = 10000;
  const STABLE_MS = 3000;          // a connection open this long resets the backoff
  const HEARTBEAT_MS = 30000;      // presence re-announcement while online
  const ROSTER_POLL_MS = 2000;     // GET /presence/<room> while online
  const ROSTER_SETTLE_MS = 600;    // a second look after a join/leave (other nodes write within 250 ms)
  const MEMBER_TTL_MS = 150000;    // a member silent this long is dropped
  const STALE_GRACE_MS = 10000;    // after reconnecting, members not heard from by then are dropped
  const QUEUE_MAX = 100;           // messages kept while offline
  const MAX_LINES = 500;           // messages kept in the list
  const MAX_TEXT = 4000, MAX_NAME = 32, MAX_ROOM = 64, MAX_ID = 64, MAX_FRAME = 65536;

  const $ = (sel) => document.querySelector(sel);
  const el = {
    form: $('#join-form'), name: $('#name'), room: $('#room'), join: $('#join'), leave: $('#leave'),
    status: $('#status'), roomTitle: $('#room-title'),
    messages: $('#messages'), composer: $('#composer'), input: $('#input'), send: $('#send'),
    members: $('#members'), memberCount: $('#member-count'), anonymous: $('#anonymous'),
    endpoint: $('#endpoint'), extensions: $('#extensions'), queueInfo: $('#queue-info'),
  };

  // ---- helpers ------------------------------------------------------------
  function newId() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }
  // Printable, single-line, trimmed, bounded; '' when unusable.
  function cleanLabel(v, max) {
    if (typeof v !== 'string') return '';
    return v.replace(/[\u0000-\u001f\u007f]/g, ' ').trim().slice(0, max);
  }
  function cleanId(v) {
    return typeof v === 'string' && v.length > 0 && v.length <= MAX_ID ? v : '';
  }
  function hue(s) {
    let h = 0;
    for (const c of s) h = (h * 31 + c.codePointAt(0)) >>> 0;
    return h % 360;
  }
  function initial(name) {
    const first = Array.from(name.trim())[0] || '?';
    return first.toUpperCase();
  }
  function clock(d) {
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }
  function node(tag, cls, text) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    return n;
  }

  // ---- state --------------------------------------------------------------
  const me = { id: newId(), name: '', room: '' };
  const members = new Map();          // id -> { name, seen, stale }: for the notices
  let roster = null;                  // the server's { room, count, members, partial }
  let rosterAsked = 0;                // answers to older questions are ignored
  const queue = [];                   // { msg, li } waiting for the connection
  let ws = null;
  let state = 'offline';              // offline | connecting | online | reconnecting
  let joined = false;
  let everOnline = false;             // since the last join
  let attempt = 0;                    // consecutive failed attempts
  let retryAt = 0;
  const timers = { retry: 0, countdown: 0, connect: 0, stable: 0, heartbeat: 0, grace: 0, roster: 0, settle: 0 };

  function clearTimer(k) {
    clearTimeout(timers[k]);
    clearInterval(timers[k]);
    timers[k] = 0;
  }

  function setState(s, detail) {
    state = s;
    el.status.dataset.state = s;
    el.status.textContent = detail ? `${s} ${detail}` : s;
    const usable = joined;
    el.input.disabled = !usable;
    el.send.disabled = !usable;
    el.input.placeholder = !joined ? 'Join a room to chat'
      : s === 'online' ? `Message #${me.room}`
      : 'Offline: messages will be sent when back online';
  }

  // ---- connection ---------------------------------------------------------
  let warnedNoHost = false;
  function wsUrl() {
    if (!location.host) {   // opened as a file: there is no server to talk to
      if (!warnedNoHost) addNotice('Open this page from `duplex serve` (http://HOST:PORT/) to connect.');
      warnedNoHost = true;
      throw new Error('no host');
    }
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/chat/${encodeURIComponent(me.room)}?name=${encodeURIComponent(me.name)}`;
  }

  // ---- the server's member list -------------------------------------------
  async function refreshRoster() {
    if (!joined || !location.host) return;
    const room = me.room;
    const asked = ++rosterAsked;
    let answer;
    try {
      const res = await fetch(`/presence/${encodeURIComponent(room)}`, { cache: 'no-store' });
      if (!res.ok) return;
      answer = await res.json();
    } catch (e) {
      return;   // offline: the next poll tries again
    }
    if (asked !== rosterAsked || !joined || room !== me.room || !answer || typeof answer !== 'object') return;
    const names = Array.isArray(answer.members) ? answer.members.map((n) => cleanLabel(n, 64)).filter((n) => n) : [];
    const count = Number.isInteger(answer.count) ? Math.max(answer.count, names.length) : names.length;
    roster = { room, count, members: names, partial: answer.partial === true };
    renderMembers();
  }

  // Right after a join or leave, and once more when other nodes have written it.
  function refreshRosterSoon() {
    refreshRoster();
    clearTimer('settle');
    timers.settle = setTimeout(refreshRoster, ROSTER_SETTLE_MS);
  }

  function connect() {
    clearTimer('retry');
    clearTimer('countdown');
    if (!joined) return;
    const reconnecting = everOnline || attempt > 0;
    setState(reconnecting ? 'reconnecting' : 'connecting', reconnecting ? `(attempt ${attempt + 1})…` : '');
    let sock;
    try {
      const url = wsUrl();
      el.endpoint.textContent = url.split('?')[0];   // the room's endpoint, without your name
      sock = new WebSocket(url);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws = sock;
    timers.connect = setTimeout(() => {
      if (sock.readyState === WebSocket.CONNECTING) sock.close();
    }, CONNECT_TIMEOUT_MS);
    sock.onopen = () => { if (ws === sock) onOpen(sock); };
    sock.onmessage = (ev) => { if (ws === sock) onData(ev.data); };
    sock.onerror = () => { /* a close event follows */ };
    sock.onclose = () => {
      if (ws !== sock) return;
      ws = null;
      onClose();
    };
  }

  function onOpen(sock) {
    clearTimer('connect');
    everOnline = true;
    timers.stable = setTimeout(() => { attempt = 0; }, STABLE_MS);
    const ext = sock.extensions || '';
    el.extensions.textContent = `compression: ${/permessage-deflate/.test(ext) ? 'permessage-deflate' : 'none'}`;
    el.extensions.title = ext ? `Sec-WebSocket-Extensions: ${ext}` : 'no extension negotiated';
    setState('online');
    send({ type: 'join', id: me.id, name: me.name });
    flushQueue();
    timers.heartbeat = setInterval(heartbeat, HEARTBEAT_MS);
    refreshRosterSoon();
    timers.roster = setInterval(refreshRoster, ROSTER_POLL_MS);
    // Members we knew before the outage who have not spoken up by now are gone.
    timers.grace = setTimeout(() => {
      for (const [id, m] of members) if (m.stale) dropMember(id, null);
    }, STALE_GRACE_MS);
  }

  function onClose() {
    clearTimer('connect');
    clearTimer('stable');
    clearTimer('heartbeat');
    clearTimer('grace');
    clearTimer('roster');
    clearTimer('settle');
    rosterAsked += 1;   // an answer still on its way is from before the outage
    for (const m of members.values()) m.stale = true;
    for (const li of el.members.querySelectorAll('li:not(.self)')) li.classList.add('stale');
    el.extensions.textContent = 'compression: n/a';
    if (!joined) { setState('offline'); return; }
    scheduleReconnect();
  }

  function scheduleReconnect() {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(attempt, 16));
    const delay = Math.max(0, Math.round(base * (1 + (Math.random() * 2 - 1) * JITTER)));
    attempt += 1;
    retryAt = Date.now() + delay;
    const tick = () => {
      const left = Math.max(0, retryAt - Date.now());
      setState('reconnecting', `in ${(left / 1000).toFixed(1)} s…`);
    };
    tick();
    clearTimer('countdown');
    timers.countdown = setInterval(tick, 100);
    clearTimer('retry');
    timers.retry = setTimeout(connect, delay);
  }

  function send(obj) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(obj));
    return true;
  }

  function heartbeat() {
    send({ type: 'presence', id: me.id, name: me.name });
    const now = Date.now();
    for (const [id, m] of members) {
      if (now - m.seen > MEMBER_TTL_MS) dropMember(id, `${m.name} left (timed out)`);
    }
  }

  // ---- incoming -----------------------------------------------------------
  function onData(data) {
    if (typeof data !== 'string' || data.length > MAX_FRAME) return;   // binary or oversized: not ours
    let m;
    try { m = JSON.parse(data); } catch (e) { return; }
    if (!m || typeof m !== 'object' || Array.isArray(m)) return;
    const id = cleanId(m.id);
    const name = cleanLabel(m.name, MAX_NAME);
    if (!id || !name || id === me.id) return;
    switch (m.type) {
      case 'join':
        upsertMember(id, name, true);
        send({ type: 'presence', id: me.id, name: me.name });
        refreshRosterSoon();
        break;
      case 'presence':
        upsertMember(id, name, false);
        break;
      case 'message':
        if (typeof m.text !== 'string' || m.text.length === 0) return;
        upsertMember(id, name, false);
        addMessage({ id, name, text: m.text.slice(0, MAX_TEXT), ts: m.ts }, false);
        break;
      case 'leave':
        if (members.has(id)) dropMember(id, `${members.get(id).name} left`);
        refreshRosterSoon();
        break;
      default:
        break;   // unknown type: ignore
    }
  }

  // ---- members ------------------------------------------------------------
  function memberItem(name, self) {
    const li = node('li', self ? 'self' : '');
    li.dataset.name = name;
    li.style.setProperty('--hue', hue(name));
    li.append(node('span', 'avatar', initial(name)), node('span', 'who', name));
    if (self) li.append(node('span', 'you', '(you)'));
    li.title = name;
    return li;
  }

  // The server's list (you first, then the others by name); until it has
  // answered, just you. Anonymous members are counted, not listed.
  function renderMembers() {
    el.members.replaceChildren();
    el.anonymous.textContent = '';
    if (!joined) { el.memberCount.textContent = ''; return; }
    const known = roster && roster.room === me.room ? roster : { count: 1, members: [me.name], partial: false };
    const others = [...known.members];
    const mine = others.indexOf(me.name);
    if (mine >= 0) others.splice(mine, 1);
    others.sort((a, b) => a.localeCompare(b));
    el.members.append(memberItem(me.name, true));
    for (const name of others) el.members.append(memberItem(name, false));
    const listed = others.length + 1;
    const count = Math.max(known.count + (mine >= 0 ? 0 : 1), listed);
    if (count > listed) el.anonymous.textContent = `+ ${count - listed} anonymous`;
    el.memberCount.textContent = known.partial ? `· ${count} (this server only)` : `· ${count}`;
    el.memberCount.dataset.count = String(count);
    el.memberCount.title = known.partial ? 'the other servers could not be asked' : '';
  }

  function upsertMember(id, name, announce) {
    const known = members.get(id);
    if (known) {
      known.seen = Date.now();
      known.stale = false;
      if (known.name !== name) {
        addNotice(`${known.name} is now ${name}`);
        known.name = name;
      }
      return;
    }
    members.set(id, { name, seen: Date.now(), stale: false });
    if (announce) addNotice(`${name} joined`);
  }

  function dropMember(id, notice) {
    if (!members.delete(id)) return;
    if (notice) addNotice(notice);
  }

  // ---- message list -------------------------------------------------------
  function append(li, force) {
    const list = el.messages;
    const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    list.append(li);
    while (list.childElementCount > MAX_LINES) list.firstElementChild.remove();
    if (nearBottom || force) list.scrollTop = list.scrollHeight;
  }

  function addNotice(text) {
    append(node('li', 'notice', text), false);
  }

  function addMessage({ id, name, text, ts }, own) {
    const now = Date.now();
    const when = new Date(typeof ts === 'number' && Number.isFinite(ts) && Math.abs(ts - now) < 3.15e10 ? ts : now);
    const li = node('li', own ? 'msg own' : 'msg');
    li.dataset.from = name;
    li.dataset.text = text;
    li.dataset.sender = id;
    li.dataset.ts = String(when.getTime());
    li.style.setProperty('--hue', hue(name));
    const prev = el.messages.lastElementChild;
    if (prev && prev.classList.contains('msg') && prev.dataset.sender === id &&
        prev.dataset.from === name && when.getTime() - Number(prev.dataset.ts) < 180000) {
      li.classList.add('cont');
    }
    const meta = node('div', 'meta');
    const time = node('time', '', clock(when));
    time.dateTime = when.toISOString();
    time.title = when.toLocaleString();
    meta.append(node('span', 'from', own ? 'you' : name), time);
    li.append(meta, node('div', 'bubble', text));
    append(li, own);
    return li;
  }

  function setPending(li, pending) {
    li.classList.toggle('pending', pending);
    let mark = li.querySelector('.state');
    if (pending && !mark) {
      mark = node('span', 'state', '· waiting for connection');
      li.querySelector('.meta').append(mark);
      li.classList.remove('cont');
    } else if (!pending && mark) {
      mark.remove();
    }
  }

  function updateQueueInfo() {
    el.queueInfo.textContent = queue.length ? `${queue.length} pending` : '';
  }

  function flushQueue() {
    while (queue.length && ws && ws.readyState === WebSocket.OPEN) {
      const { msg, li } = queue.shift();
      msg.name = me.name;
      send(msg);
      setPending(li, false);
    }
    updateQueueInfo();
  }

  function sendMessage(text) {
    const msg = { type: 'message', id: me.id, name: me.name, text, ts: Date.now() };
    const li = addMessage(msg, true);
    if (queue.length === 0 && send(msg)) return;
    if (queue.length >= QUEUE_MAX) {
      li.classList.add('failed');
      addNotice(`Offline queue full (${QUEUE_MAX}): message not sent`);
      return;
    }
    setPending(li, true);
    queue.push({ msg, li });
    updateQueueInfo();
    flushQueue();
  }

  // ---- join / leave -------------------------------------------------------
  function join() {
    const name = cleanLabel(el.name.value, MAX_NAME);
    const room = cleanLabel(el.room.value, MAX_ROOM);
    el.name.setAttribute('aria-invalid', String(!name));
    el.room.setAttribute('aria-invalid', String(!room));
    if (!name) { el.name.focus(); return; }
    if (!room) { el.room.focus(); return; }
    if (joined && name === me.name && room === me.room) {
      if (!ws) connect();   // waiting to reconnect: try now
      return;
    }
    if (joined) leave();
    me.name = name;
    me.room = room;
    joined = true;
    everOnline = false;
    attempt = 0;
    el.name.value = name;
    el.room.value = room;
    el.roomTitle.textContent = `#${room}`;
    document.title = `#${room} · duplex chat`;
    el.join.textContent = 'Switch';
    el.leave.hidden = false;
    try { localStorage.setItem('duplex-chat-name', name); } catch (e) { /* storage may be off */ }
    try {
      const q = new URLSearchParams(location.search);
      q.set('name', name);
      q.set('room', room);
      history.replaceState(null, '', `${location.pathname}?${q}`);
    } catch (e) { /* file:// and sandboxes */ }
    el.messages.replaceChildren();
    addNotice(`You joined #${room} as ${name}`);
    renderMembers();
    connect();
    el.input.focus();
  }

  function leave() {
    if (!joined) return;
    send({ type: 'leave', id: me.id, name: me.name });
    joined = false;
    for (const k of Object.keys(timers)) clearTimer(k);
    if (ws) {
      const sock = ws;
      ws = null;
      try { sock.close(1000, 'leaving'); } catch (e) { /* already closing */ }
    }
    for (const { li } of queue) { setPending(li, false); li.classList.add('failed'); }
    queue.length = 0;
    updateQueueInfo();
    members.clear();
    roster = null;
    rosterAsked += 1;
    renderMembers();
    el.roomTitle.textContent = '';
    el.join.textContent = 'Join';
    el.leave.hidden = true;
    el.extensions.textContent = 'compression: n/a';
    el.endpoint.textContent = '';
    addNotice(`You left #${me.room}`);
    setState('offline');
  }

  // ---- wiring -------------------------------------------------------------
  el.form.addEventListener('submit', (e) => { e.preventDefault(); join(); });
  el.leave.addEventListener('click', () => leave());
  el.composer.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = el.input.value.slice(0, MAX_TEXT);
    if (!joined || text.trim() === '') return;
    el.input.value = '';
    sendMessage(text);
  });
  // Leaving the page: tell the room (best effort), like a leave button.
  window.addEventListener('pagehide', () => {
    if (!joined) return;
    send({ type: 'leave', id: me.id, name: me.name });
    if (ws) { try { ws.close(1000, 'page closed'); } catch (e) { /* ignore */ } }
  });
  // Back from the back/forward cache: the socket is gone, rejoin.
  window.addEventListener('pageshow', (e) => {
    if (e.persisted && joined && !ws) { attempt = 0; connect(); }
  });
  // The network came back: do not wait for the backoff.
  window.addEventListener('online', () => {
    if (joined && !ws && timers.retry) connect();
  });

  window.duplexChat = {
    get state() { return state; },
    get socket() { return ws; },
    get id() { return me.id; },
    get name() { return me.name; },
    get room() { return me.room; },
    get members() { return [...el.members.querySelectorAll('li')].map((li) => li.dataset.name); },
    get count() { return Number(el.memberCount.dataset.count || 0); },
    get partial() { return roster ? roster.partial : false; },
    get pending() { return queue.length; },
  };

  // Defaults from ?name=..&room=.. (both given: join at once).
  const q = new URLSearchParams(location.search);
  let storedName = '';
  try { storedName = localStorage.getItem('duplex-chat-name') || ''; } catch (e) { /* storage may be off */ }
  el.name.value = cleanLabel(q.get('name') || '', MAX_NAME) || storedName || `guest-${me.id.slice(0, 4)}`;
  el.room.value = cleanLabel(q.get('room') || '', MAX_ROOM) || 'lobby';
  setState('offline');
  if (q.get('name') && q.get('room')) join();
  else el.name.focus();
})();
