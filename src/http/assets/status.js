// The status page: fed by the server's event stream (/api/events), nothing polled.
// Everything a client wrote (names, paths, chat) goes into the page as text, never as markup.
'use strict'

const MACHINES = ['session', 'coordinator', 'giver', 'taker']
const $ = (id) => document.getElementById(id)

let status = null
let selectedUser = null
let shownMachine = 'session'
let machinesDrawn = false

function el (tag, attrs, ...children) {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue
    if (k === 'class') e.className = v
    else if (k.startsWith('data-')) e.setAttribute(k, v)
    else e[k] = v
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)))
  return e
}

function bytes (n) {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++ }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`
}

function duration (seconds) {
  const s = Math.max(0, Math.round(seconds))
  const d = Math.floor(s / 86400)
  const h = Math.floor((s % 86400) / 3600)
  const m = Math.floor((s % 3600) / 60)
  const r = s % 60
  if (d > 0) return `${d} d ${h} h`
  if (h > 0) return `${h} h ${m} min`
  if (m > 0) return `${m} min ${r} s`
  return `${r} s`
}

const time = (iso) => new Date(iso).toLocaleTimeString()
const dateTime = (iso) => new Date(iso).toLocaleString()

function showUptime () {
  if (status !== null) $('uptime').textContent = duration((Date.now() - Date.parse(status.startedAt)) / 1000)
}

function renderHeader (s) {
  $('project').textContent = s.project
  document.title = `${s.project} · VCStudio multiuser`
  $('address').textContent = `${s.server.host}:${s.server.port}`
  $('version').textContent = s.version
  $('connections').textContent = String(s.connections)
  const p = s.persistence
  $('persistence').textContent = p.mode === 'off'
    ? 'off (memory only)'
    : `${p.problem ? 'FAILING' : 'on'} · ${p.dataDir}${p.lastWriteAt ? ` · last saved ${time(p.lastWriteAt)}` : ''}`
  const health = $('health')
  health.textContent = s.health.ok ? 'healthy' : 'unhealthy'
  health.className = `badge ${s.health.ok ? 'ok' : 'bad'}`
  const reasons = $('health-reasons')
  reasons.hidden = s.health.ok
  reasons.textContent = s.health.reasons.join(' · ')
  showUptime()
}

function renderUsers (s) {
  $('user-count').textContent = `(${s.users.length})`
  const body = $('users').tBodies[0]
  body.replaceChildren()
  if (s.users.length === 0) body.append(el('tr', {}, el('td', { class: 'empty', colSpan: 7 }, 'nobody is connected')))
  for (const u of s.users) {
    const pending = u.pending.map((p) => (p.count > 1 ? `${p.kind} ×${p.count}` : p.kind)).join(', ')
    const row = el('tr', { class: `user${u.id === selectedUser ? ' selected' : ''}`, 'data-user-id': u.id, title: 'show this session in the machines' },
      el('td', { class: 'username' }, u.username),
      el('td', {}, el('code', {}, u.id)),
      el('td', { class: 'at' }, u.at === null ? '–' : `${u.at[0]} (${u.at[1]})`),
      el('td', {}, `${u.camera[0]}, ${u.camera[1]}`),
      el('td', { title: dateTime(u.connectedSince) }, time(u.connectedSince)),
      el('td', { class: 'state state-name' }, u.state),
      el('td', { class: 'pending' }, pending === '' ? '–' : pending))
    row.addEventListener('click', () => select(u.id))
    body.append(row)
  }
}

function renderRelays (s) {
  const box = $('relays')
  box.replaceChildren()
  if (s.relays.length === 0) box.append(el('p', { class: 'muted' }, 'No relay right now.'))
  for (const r of s.relays) {
    const files = r.filesTotal === null ? `${r.filesDone} files` : `${r.filesDone} / ${r.filesTotal} files`
    const total = r.bytesTotalKnown ? bytes(r.bytesTotal) : `${bytes(r.bytesTotal)} so far`
    box.append(el('div', { class: `relay${r.started ? '' : ' waiting'}`, 'data-relay-id': String(r.id), 'data-fraction': String(r.fraction) },
      el('div', {},
        el('span', { class: 'folder' }, el('code', {}, r.folder)), ' · ',
        el('span', { class: 'who' }, `${r.giverName || r.giver} → ${r.takerName || r.taker}`),
        r.started ? '' : el('span', { class: 'muted' }, ' · waiting for the giver\'s turn')),
      el('progress', { class: 'relay-progress', max: 1, value: r.fraction }),
      el('div', { class: 'numbers' },
        el('span', {}, files),
        el('span', { class: 'bytes' }, `${bytes(r.bytesDone)} of ${total}`),
        el('span', {}, `${Math.round(r.fraction * 100)} %`),
        el('span', {}, `${bytes(Math.round(r.rate))}/s`),
        el('span', {}, r.etaSeconds === null ? 'ETA –' : `ETA ${duration(r.etaSeconds)}`))))
  }
  const body = $('finished').tBodies[0]
  body.replaceChildren()
  if (s.finishedRelays.length === 0) body.append(el('tr', {}, el('td', { class: 'empty', colSpan: 7 }, 'none yet')))
  for (const f of s.finishedRelays) {
    body.append(el('tr', { class: 'finished-relay', 'data-relay-id': String(f.id), 'data-outcome': f.outcome },
      el('td', {}, el('code', {}, f.folder)),
      el('td', { title: `${f.giver} → ${f.taker}` }, `${f.giverName || f.giver} → ${f.takerName || f.taker}`),
      el('td', { class: `outcome outcome-${f.outcome}`, title: f.failure || '' }, f.failure ? `${f.outcome}: ${f.failure}` : f.outcome),
      el('td', {}, String(f.files)),
      el('td', {}, bytes(f.bytes)),
      el('td', {}, f.durationMs > 0 ? `${(f.durationMs / 1000).toFixed(1)} s` : '–'),
      el('td', {}, time(new Date(f.endedAt).toISOString()))))
  }
}

function renderChat (s) {
  const list = $('chat')
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4
  list.replaceChildren(...s.chat.map((c) => el('li', {}, el('span', { class: 'who' }, c.username), c.text)))
  if (atBottom) list.scrollTop = list.scrollHeight
}

function renderShared (s) {
  const owner = s.users.find((u) => u.id === s.story.owner)
  $('shared').replaceChildren(
    el('div', {}, el('dt', {}, 'story'), el('dd', { id: 'story-facts' },
      `${bytes(s.story.bytes)} · ${s.story.timestamp} · owner ${s.story.owner}${owner ? ` (${owner.username})` : ''}`)),
    el('div', {}, el('dt', {}, 'analytics'), el('dd', { id: 'analytics-facts' }, `${bytes(s.analytics.bytes)} · ${s.analytics.timestamp}`)))
}

/** Counts on every state, and the selected user's states highlighted (its session, and a relay it is part of). */
function renderMachines (s) {
  if (!machinesDrawn) return
  const user = s.users.find((u) => u.id === selectedUser)
  const highlight = { session: user ? user.states : [], coordinator: [], giver: [], taker: [] }
  if (user) {
    for (const r of s.relays) {
      if (r.giver === user.id) highlight.giver = r.giverStates
      if (r.taker === user.id) highlight.taker = r.takerStates
    }
  }
  $('selected-user').textContent = user ? `${user.username} (${user.id}) is in ${user.state}` : 'click a user above'
  for (const m of MACHINES) {
    const counts = s.machines[m] || {}
    const current = new Set(highlight[m])
    for (const g of document.querySelectorAll(`svg[data-machine="${m}"] .state`)) {
      const id = g.getAttribute('data-state')
      const n = counts[id] || 0
      g.querySelector('.count').textContent = n > 0 ? String(n) : ''
      g.classList.toggle('occupied', n > 0)
      g.classList.toggle('current', current.has(id))
    }
  }
}

function render () {
  if (status === null) return
  renderHeader(status)
  renderUsers(status)
  renderRelays(status)
  renderChat(status)
  renderShared(status)
  renderMachines(status)
}

function select (userId) {
  selectedUser = selectedUser === userId ? null : userId
  if (selectedUser !== null) showMachine('session')
  render()
  // At actual size the diagram scrolls: bring the user's state into view.
  const leaf = [...document.querySelectorAll('svg[data-machine="session"] .state.current')].pop()
  if (leaf && !$('fit').checked) leaf.scrollIntoView({ block: 'center', inline: 'center' })
}

function showMachine (name) {
  shownMachine = name
  for (const b of $('machine-tabs').children) b.classList.toggle('active', b.dataset.machine === name)
  for (const v of $('machines').children) v.hidden = v.dataset.machine !== name
}

async function drawMachines () {
  const res = await fetch('/api/machines', { cache: 'no-store' })
  if (!res.ok) throw new Error(`machines: HTTP ${res.status}`)
  const svgs = await res.json()
  const tabs = $('machine-tabs')
  const views = $('machines')
  views.replaceChildren()
  for (const m of MACHINES) {
    const b = el('button', { type: 'button', 'data-machine': m }, m)
    b.addEventListener('click', () => showMachine(m))
    tabs.append(b)
    const view = el('div', { class: 'machine-view', 'data-machine': m, id: `machine-${m}` })
    // Server-made SVG from the machine definitions (state names are escaped there); no client data in it.
    view.innerHTML = svgs[m]
    views.append(view)
  }
  machinesDrawn = true
  showMachine(shownMachine)
  renderMachines(status || { users: [], relays: [], machines: {} })
}

function connect () {
  const live = $('live')
  const events = new EventSource('/api/events')
  events.addEventListener('status', (e) => {
    status = JSON.parse(e.data)
    live.textContent = 'live'
    live.className = 'badge ok'
    render()
  })
  events.addEventListener('error', () => {
    live.textContent = events.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting…'
    live.className = 'badge bad'
  })
}

connect()
setInterval(showUptime, 1000)
$('fit').addEventListener('change', () => $('machines').classList.toggle('fit', $('fit').checked))
$('machines').classList.toggle('fit', $('fit').checked)
drawMachines().catch((err) => { $('machines').textContent = `Could not draw the machines: ${err.message}` })
