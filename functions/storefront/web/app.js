// The storefront page: follows /events (server-sent events) and places
// orders with POST /orders. Everything shown is set as text, never as HTML.
'use strict';

const MAX_ORDERS = 25, MAX_EMAILS = 10, MAX_DEAD = 10;
const $ = (id) => document.getElementById(id);
const orders = new Map(); // order id -> its row
const emailed = new Set(); // order ids in the emails table
let lastEventId = '';

function td(row, text, cls) {
  const c = row.insertCell();
  c.textContent = text;
  if (cls) c.className = cls;
  return c;
}

function clock(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return '';
  return d.toLocaleTimeString('en-GB', { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}

function trim(body, max) {
  while (body.rows.length > max) body.deleteRow(body.rows.length - 1);
}

function showStock(s) {
  const body = $('products').tBodies[0];
  const before = new Map([...body.rows].map((r) => [r.dataset.product, r.dataset.stock]));
  body.replaceChildren();
  for (const p of s.products) {
    const row = body.insertRow();
    row.dataset.product = p.id;
    row.dataset.stock = String(p.stock);
    if (before.has(p.id) && before.get(p.id) !== row.dataset.stock) row.className = 'changed';
    td(row, p.id);
    td(row, p.name);
    td(row, String(p.stock), 'num stock');
  }
  $('stock-error').textContent = s.error || '';
  const select = $('product');
  const chosen = select.value;
  select.replaceChildren(...s.products.map((p) => new Option(p.name + ' (' + p.id + ')', p.id)));
  if (chosen) select.value = chosen;
}

const STEPS = ['placed', 'stored', 'emailed'];

function orderRow(id) {
  let row = orders.get(id);
  if (row) return row;
  row = $('orders').tBodies[0].insertRow(0);
  row.dataset.order = id;
  td(row, id, 'data');
  td(row, '');
  td(row, '', 'num');
  for (const step of STEPS) td(row, '—', 'pending step-' + step);
  orders.set(id, row);
  const body = $('orders').tBodies[0];
  while (body.rows.length > MAX_ORDERS) {
    orders.delete(body.rows[body.rows.length - 1].dataset.order);
    body.deleteRow(body.rows.length - 1);
  }
  return row;
}

function showStep(s) {
  const row = orderRow(s.orderId);
  if (s.productId) row.cells[1].textContent = s.productId;
  if (s.quantity) row.cells[2].textContent = String(s.quantity);
  const i = STEPS.indexOf(s.step);
  if (i < 0) return;
  const cell = row.cells[3 + i];
  cell.textContent = clock(s.at);
  cell.className = 'done step-' + s.step;
  // The furthest step reached, for a glance (and for tests).
  const reached = STEPS.filter((step) => row.querySelector('.done.step-' + step));
  row.dataset.step = reached[reached.length - 1];
  if (s.step === 'emailed' && !emailed.has(s.orderId)) {
    emailed.add(s.orderId);
    const mail = $('emails').tBodies[0].insertRow(0);
    mail.dataset.order = s.orderId;
    td(mail, s.to || '');
    td(mail, s.subject || '');
    td(mail, clock(s.at));
    trim($('emails').tBodies[0], MAX_EMAILS);
  }
}

function showDeadLetter(d) {
  const row = $('dead-letters').tBodies[0].insertRow(0);
  td(row, d.eventId + (d.type ? ' (' + d.type + ')' : ''), 'data');
  td(row, d.source || '');
  td(row, d.data, 'data');
  td(row, clock(d.at));
  trim($('dead-letters').tBodies[0], MAX_DEAD);
}

function ms(x) {
  return x ? x.toFixed(x < 10 ? 2 : 1) : '—';
}

function showCounters(c) {
  const body = $('counters').tBodies[0];
  body.replaceChildren();
  for (const app of c.apps) {
    if (app.error) {
      const row = body.insertRow();
      td(row, app.appId);
      const note = td(row, app.error, 'error');
      note.colSpan = 7;
      continue;
    }
    for (const f of app.functions) {
      const row = body.insertRow();
      row.dataset.app = app.appId;
      row.dataset.name = f.name;
      td(row, app.appId);
      td(row, f.trigger);
      td(row, f.name, 'data');
      td(row, String(f.success), 'num success');
      td(row, String(f.retry), 'num');
      td(row, String(f.drop), 'num');
      td(row, ms(f.p50Ms), 'num');
      td(row, ms(f.p99Ms), 'num');
    }
  }
}

function connection(text, live) {
  const el = $('connection');
  el.textContent = text;
  el.className = live ? 'live' : '';
}

function follow() {
  const url = lastEventId ? 'events?lastEventId=' + encodeURIComponent(lastEventId) : 'events';
  const events = new EventSource(url);
  const on = (name, show) => events.addEventListener(name, (e) => {
    if (e.lastEventId) lastEventId = e.lastEventId;
    show(JSON.parse(e.data));
  });
  on('stock', showStock);
  on('order', showStep);
  on('deadletter', showDeadLetter);
  on('counters', showCounters);
  on('skipped', (s) => { $('skipped').textContent = 'Busy shop: ' + s.events + ' events were not shown.'; });
  events.onopen = () => connection('Live', true);
  events.onerror = () => {
    connection('Reconnecting…', false);
    if (events.readyState === EventSource.CLOSED) { // refused: try again ourselves
      setTimeout(follow, 3000);
    }
  };
}

let placing = false;
$('order-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  if (placing) return;
  placing = true;
  const button = $('place');
  button.setAttribute('aria-disabled', 'true');
  const result = $('order-result'), error = $('order-error');
  result.textContent = 'Placing the order…';
  error.textContent = '';
  const q = $('quantity').value.trim();
  const order = {
    productId: $('product').value,
    quantity: /^-?\d+$/.test(q) ? Number(q) : q, // the order function says what is wrong with the rest
    customerEmail: $('email').value.trim(),
  };
  try {
    const r = await fetch('orders', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(order) });
    const answer = await r.json().catch(() => ({}));
    if (r.ok) {
      result.textContent = 'Order ' + answer.orderId + ' placed.';
      result.dataset.order = answer.orderId;
    } else {
      result.textContent = '';
      error.textContent = answer.error || 'The order failed (HTTP ' + r.status + ').';
    }
  } catch {
    result.textContent = '';
    error.textContent = 'The storefront cannot be reached: try again.';
  } finally {
    placing = false;
    button.removeAttribute('aria-disabled');
  }
});

follow();
