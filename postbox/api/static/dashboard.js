// Postbox dashboard: polls /dashboard/api/overview and redraws the page. Plain DOM, no
// framework: every value goes in through textContent, never as HTML.
"use strict";

const POLL_MS = 2000;
const csrf = document.querySelector('meta[name="csrf-token"]').content;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) tr.append(cell instanceof Node ? wrap(cell) : el("td", cell));
  return tr;
}

function wrap(node) {
  const td = document.createElement("td");
  td.append(node);
  return td;
}

function drawCounts(counts) {
  for (const [state, value] of Object.entries(counts)) {
    const node = document.getElementById("count-" + state);
    if (node) node.textContent = String(value);
  }
}

function drawThroughput(throughput) {
  const box = document.getElementById("throughput");
  const sent = throughput.per_minute.sent;
  const failed = throughput.per_minute.failed;
  const top = Math.max(1, ...sent.map((s, i) => s + failed[i]));
  box.replaceChildren();
  sent.forEach((s, i) => {
    const minutesAgo = sent.length - 1 - i;
    const bar = el("div", null, "bar");
    bar.title = `${minutesAgo ? minutesAgo + " min ago" : "last minute"}: ${s} sent, ${failed[i]} failed`;
    const ok = el("div", null, "sent");
    ok.style.height = `${(100 * s) / top}%`;
    const bad = el("div", null, "failed");
    bad.style.height = `${(100 * failed[i]) / top}%`;
    bar.append(bad, ok, el("span", minutesAgo ? `-${minutesAgo}m` : "now", "tick"));
    box.append(bar);
  });
  document.getElementById("throughput-summary").textContent =
    `${throughput.sent} sent and ${throughput.failed} failed in the last minute ` +
    `(${throughput.sent_per_second}/s)`;
}

function drawAdvice(advice) {
  const list = document.getElementById("advice");
  list.replaceChildren();
  if (!advice.length) list.append(el("li", "Nothing to do: the numbers look fine.", "muted"));
  for (const item of advice) {
    const li = el("li", item.message, "warn");
    li.append(el("small", ` ${item.figure} = ${item.value} (threshold ${item.threshold})`));
    list.append(li);
  }
}

function ago(seconds) {
  return seconds < 1 ? "now" : `${Math.round(seconds)} s ago`;
}

function drawInstances(instances, cluster) {
  const body = document.querySelector("#instances tbody");
  body.replaceChildren(
    ...instances.map((i) =>
      row([i.id, i.role ?? "", i.host ?? "", i.pid ?? "", i.version ?? "",
           el("span", i.health, "health " + i.health), i.concurrency ?? "", i.active ?? "",
           i.processed ?? "", i.started_at ?? "", ago(i.last_seen_seconds)]),
    ),
  );
  const p = cluster.processes;
  const w = cluster.roles.worker;
  const a = cluster.roles.api;
  document.getElementById("cluster-summary").textContent =
    `${p.healthy} healthy, ${p.slow} slow heartbeat, ${p.gone} gone. ` +
    `Workers: ${w.processes} processes, ${w.active} of ${w.concurrency} slots busy, ` +
    `${w.processed} processed. API: ${a.processes} processes, ${a.active} requests in flight.`;
}

function button(label, action, id) {
  const b = el("button", label, action);
  b.dataset.id = id;
  b.addEventListener("click", () => act(action, id, b));
  return b;
}

async function act(action, id, b) {
  if (action === "delete" && !window.confirm("Discard this email for good?")) return;
  b.disabled = true;
  const url = action === "retry" ? `api/dead-letters/${id}/retry` : `api/dead-letters/${id}`;
  const method = action === "retry" ? "POST" : "DELETE";
  const reply = await fetch(url, { method, headers: { "X-CSRF-Token": csrf } });
  if (!reply.ok) showStatus(`${action} failed (${reply.status})`, true);
  await refresh();
}

function drawDeadLetters(page) {
  const body = document.querySelector("#dead-letters tbody");
  if (!page.data.length) {
    const empty = el("td", "No dead letters.", "muted");
    empty.colSpan = 7;
    const tr = document.createElement("tr");
    tr.append(empty);
    body.replaceChildren(tr);
    return;
  }
  body.replaceChildren(
    ...page.data.map((d) => {
      const actions = document.createElement("span");
      actions.append(button("Retry", "retry", d.id), button("Delete", "delete", d.id));
      const tr = row([d.failed_at.slice(0, 19).replace("T", " "), d.error_class,
                      d.to.join(", "), d.subject ?? "", d.reason, d.attempts, actions]);
      tr.dataset.id = d.id;
      return tr;
    }),
  );
}

// The delivery columns of one endpoint (last delivery status, failure counts), from the
// `delivery` the overview gives each endpoint; null until deliveries are recorded.
function deliveryCells(delivery) {
  if (!delivery) return ["—", "—"];
  // A timeout or refused connection has no status: its outcome says what happened.
  const last = delivery.last_status ?? delivery.last_outcome ?? "—";
  return [last, delivery.failures ?? "—"];
}

function drawWebhooks(endpoints) {
  const body = document.querySelector("#webhooks tbody");
  if (!endpoints.length) {
    const empty = el("td", "No webhook endpoints.", "muted");
    empty.colSpan = 6;
    const tr = document.createElement("tr");
    tr.append(empty);
    body.replaceChildren(tr);
    return;
  }
  body.replaceChildren(
    ...endpoints.map((w) => {
      const state = w.enabled
        ? el("span", "enabled", "health healthy")
        : el("span", `disabled: ${w.disabled_reason ?? ""}`, "health gone");
      const tr = row([w.url, w.events.join(", "), state, w.description,
                      ...deliveryCells(w.delivery)]);
      tr.dataset.id = w.id;
      return tr;
    }),
  );
}

function showStatus(text, bad) {
  const node = document.getElementById("status");
  node.textContent = text;
  node.className = bad ? "error" : "muted";
}

async function refresh() {
  try {
    const reply = await fetch("api/overview", { headers: { Accept: "application/json" } });
    if (reply.status === 401) {
      window.location.assign("login");
      return;
    }
    if (!reply.ok) throw new Error(`HTTP ${reply.status}`);
    const { stats, dead_letters: deadLetters, webhooks } = await reply.json();
    drawCounts(stats.counts);
    drawThroughput(stats.throughput);
    drawAdvice(stats.advice);
    drawInstances(stats.instances, stats.cluster);
    drawDeadLetters(deadLetters);
    drawWebhooks(webhooks);
    showStatus(`updated ${new Date().toLocaleTimeString()}`, false);
  } catch (error) {
    showStatus(`not updated: ${error.message}`, true);
  }
}

refresh();
setInterval(refresh, POLL_MS);
