// Baton pages: the execution graph (click a state; live over server-sent events) and the review inbox.
"use strict";
const api = (path, body) => fetch(path, body === undefined ? {} : {
  method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)})
  .then(async r => { const data = await r.json(); if (!r.ok) throw new Error(data.error ? data.error.message : r.statusText); return data; });
const el = (tag, attrs, ...children) => { const e = document.createElement(tag); Object.assign(e, attrs || {});
  children.forEach(c => e.append(c)); return e; };
const pretty = v => v === undefined || v === null ? "-" : JSON.stringify(v, null, 2);

const jsonOf = id => { const node = document.getElementById(id); return node ? JSON.parse(node.textContent || "null") : null; };
const post = (path, body) => fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
  body: JSON.stringify(body === undefined ? {} : body)})
  .then(async r => { const data = await r.json(); if (!r.ok) throw new Error(data.error ? data.error.message : r.statusText); return data; });
const REDRIVABLE = ["FAILED", "TIMED_OUT", "ABORTED"];
const ms = t => { const v = Date.parse(t); return Number.isNaN(v) ? null : v; };
const seconds = d => d === null || d === undefined ? "-" : (d / 1000).toFixed(3) + " s";
const usd = v => v === null || v === undefined ? "-" : "$" + Number(v).toFixed(6);

// Which state each event belongs to: a state event names it; a task event belongs to the state
// most recently entered and still open (as the API's state_runs reads it).
function eventRows(history) {
  const open = [], rows = [];
  const t0 = history.length ? ms(history[0].timestamp) : null;
  for (const e of history) {
    const key = Object.keys(e).find(k => k.endsWith("EventDetails"));
    const details = key ? e[key] : {};
    let state = details && details.name ? details.name : "";
    if (e.type.endsWith("StateEntered")) open.push(state);
    else if (e.type.endsWith("StateExited")) { const i = open.lastIndexOf(state); if (i >= 0) open.splice(i, 1); }
    else if (!state && /^(Task|Map|Parallel)/.test(e.type)) state = open.length ? open[open.length - 1] : "";
    else if (e.type === "ExecutionRedriven") open.length = 0;
    const at = ms(e.timestamp);
    rows.push({id: e.id, type: e.type, state, time: e.timestamp, elapsed: at !== null && t0 !== null ? at - t0 : null, event: e});
  }
  return rows;
}

function eventTable(onState) {
  const body = document.querySelector("#events tbody"), byType = document.getElementById("filter-type"),
    byState = document.getElementById("filter-state"), count = document.getElementById("event-count");
  let rows = [];
  const options = (select, values) => {
    const chosen = select.value;
    select.replaceChildren(el("option", {value: "", textContent: "all"}), ...values.map(v => el("option", {value: v, textContent: v})));
    select.value = values.includes(chosen) ? chosen : "";
  };
  const render = () => {
    const type = byType.value, state = byState.value;
    body.replaceChildren(...rows.filter(r => (!type || r.type === type) && (!state || r.state === state)).map(r => {
      const tr = el("tr", {className: "event"}, el("td", {textContent: r.id}), el("td", {className: "event-type", textContent: r.type}),
        el("td", {className: "event-state"}, r.state ? el("a", {href: "#", textContent: r.state, onclick: ev => { ev.preventDefault(); onState(r.state); }}) : ""),
        el("td", {textContent: r.time || "-"}), el("td", {className: "elapsed", textContent: seconds(r.elapsed)}));
      tr.dataset.type = r.type; tr.dataset.state = r.state;
      tr.addEventListener("click", ev => {
        if (ev.target.tagName === "A") return;
        const next = tr.nextElementSibling;
        if (next && next.classList.contains("event-details")) { next.remove(); return; }
        tr.after(el("tr", {className: "event-details"}, el("td", {colSpan: 5}, el("pre", {textContent: pretty(r.event)}))));
      });
      return tr;
    }));
  };
  byType.addEventListener("change", render); byState.addEventListener("change", render);
  return history => {
    rows = eventRows(history);
    count.textContent = history.length;
    options(byType, [...new Set(rows.map(r => r.type))].sort());
    options(byState, [...new Set(rows.map(r => r.state).filter(Boolean))].sort());
    render();
  };
}

// A tool-using model's loop as turns (docs/agents.md): each answer of a model (a task output with a
// StopReason) with its tokens and the tools it called with their arguments, then the results of
// the tasks that ran before its next answer (the tools), all from the history.
function modelTurns(history) {
  const section = document.getElementById("turns-section"), list = document.getElementById("turns");
  if (!section || !list) return;
  const turns = [];
  for (const row of eventRows(history)) {
    if (row.type !== "TaskSucceeded") continue;
    const details = row.event.taskSucceededEventDetails || {};
    let output = details.output;
    try { output = typeof output === "string" ? JSON.parse(output) : output; } catch (e) { /* shown as text */ }
    if (output && typeof output === "object" && !Array.isArray(output) && "StopReason" in output)
      turns.push({state: row.state, output, meta: details.metadata || {}, results: []});
    else if (turns.length) turns[turns.length - 1].results.push({state: row.state, output});
  }
  const short = text => text.length > 160 ? text.slice(0, 157) + "..." : text;
  section.hidden = !turns.length;
  list.replaceChildren(...turns.map(t => {
    const calls = Array.isArray(t.output.ToolCalls) ? t.output.ToolCalls : [];
    const item = el("li", {className: "turn"}, el("p", {className: "turn-head",
      textContent: `${t.state} · ${t.output.StopReason} · tokens in ${t.meta.input_tokens ?? "-"} / out ${t.meta.output_tokens ?? "-"}`}));
    if (calls.length) item.append(el("ul", {className: "tool-calls"},
      ...calls.map(c => el("li", {className: "tool-call", textContent: `${c.Name}(${JSON.stringify(c.Arguments)})`}))));
    if (t.results.length) item.append(el("ul", {className: "tool-results"},
      ...t.results.map(r => el("li", {className: "tool-result", textContent: `${r.state}: ${short(JSON.stringify(r.output))}`}))));
    return item;
  }));
}

// A Gantt chart of the states' latest runs, from their entered and exited times.
function timeline(box, execution, states, onState) {
  const runs = Object.values(states).filter(r => ms(r.entered_at) !== null)
    .sort((a, b) => ms(a.entered_at) - ms(b.entered_at));
  if (!runs.length) { box.replaceChildren(el("p", {className: "empty", textContent: "No state has run yet."})); return; }
  const t0 = Math.min(ms(execution.start_time) ?? Infinity, ...runs.map(r => ms(r.entered_at)));
  const end = r => ms(r.exited_at) ?? (execution.stop_time ? ms(execution.stop_time) : Date.now());
  const t1 = Math.max(t0 + 1, ...runs.map(end));
  const span = t1 - t0;
  box.replaceChildren(...runs.map(r => {
    const left = (ms(r.entered_at) - t0) / span * 100, width = Math.max(0.4, (end(r) - ms(r.entered_at)) / span * 100);
    const bar = el("div", {className: "bar status-" + r.status.toLowerCase(),
      title: `${r.name}: ${seconds(end(r) - ms(r.entered_at))} from +${seconds(ms(r.entered_at) - t0)}`});
    bar.style.left = left + "%"; bar.style.width = width + "%";
    const row = el("div", {className: "gantt-row"}, el("a", {className: "gantt-name", href: "#", textContent: r.name,
      onclick: ev => { ev.preventDefault(); onState(r.name); }}), el("div", {className: "gantt-track"}, bar),
      el("span", {className: "gantt-duration", textContent: seconds(end(r) - ms(r.entered_at))}));
    row.dataset.state = r.name;
    return row;
  }), el("p", {className: "meta", textContent: `0 to ${seconds(span)}`}));
}

// Values too big for a Kafka record travel as references ({"$baton.payload": 1, "key", "sha256",
// "bytes"}, docs/payloads.md): a link to each, fetched from the API only when followed.
function payloadLinks(id, value) {
  const links = [];
  const walk = (v, path) => {
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`));
    else if (v && typeof v === "object" && v["$baton.payload"] === 1 && typeof v.sha256 === "string")
      links.push(el("li", {}, el("a", {className: "payload-link", href: `/api/executions/${encodeURIComponent(id)}/payloads/${v.sha256}`,
        target: "_blank", textContent: `${path || "value"}: ${Number(v.bytes).toLocaleString()} bytes (fetch)`})));
    else if (v && typeof v === "object") Object.entries(v).forEach(([k, x]) => walk(x, path ? `${path}.${k}` : k));
  };
  walk(value, "");
  return links.length ? [el("ul", {className: "payloads"}, ...links)] : [];
}

// The output as indented JSON, wrapped, and every long or multi-line text in it shown as text.
function outputPane(box, value, id) {
  const texts = [];
  const walk = (v, path) => {
    if (typeof v === "string" && (v.length > 80 || v.includes("\n"))) texts.push([path || "output", v]);
    else if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`));
    else if (v && typeof v === "object") Object.entries(v).forEach(([k, x]) => walk(x, path ? `${path}.${k}` : k));
  };
  walk(value, "");
  box.replaceChildren(el("pre", {id: "output-json", className: "json", textContent: pretty(value)}), ...payloadLinks(id, value),
    ...texts.map(([path, text]) => el("div", {className: "text-block"}, el("h3", {textContent: path}), el("div", {className: "text", textContent: text}))));
}

function stateDetails(box, name, run, id) {
  box.replaceChildren(el("h2", {textContent: name}));
  if (!run) { box.append(el("p", {className: "empty", textContent: "This state has not run."})); return; }
  const field = (label, value) => box.append(el("h3", {textContent: label}), el("pre", {className: "field-" + label.toLowerCase(), textContent: value}));
  box.append(el("p", {className: "state-status", innerHTML: `<span class="badge status-${run.status.toLowerCase()}"></span> `},
    `${run.type} · entered ${run.entries}x · retries ${run.retries}`));
  box.querySelector(".state-status .badge").textContent = run.status;
  const entered = ms(run.entered_at), exited = ms(run.exited_at);
  const metrics = [["entered", run.entered_at || "-"], ["exited", run.exited_at || "-"],
    ["time in state", entered !== null && exited !== null ? seconds(exited - entered) : "-"], ["retries", run.retries]];
  if (run.model || run.tokens || run.cost_usd !== null) {
    const tokens = run.tokens || {};
    metrics.push(["model", (run.provider ? run.provider + " / " : "") + (run.model || "-"), "model"],
      ["tokens in", tokens.input_tokens ?? "-", "tokens-in"], ["tokens out", tokens.output_tokens ?? "-", "tokens-out"],
      ["cost", usd(run.cost_usd), "cost", run.cost_usd], ["latency", run.latency_ms === null ? "-" : run.latency_ms + " ms", "latency"],
      ["time to first token", run.time_to_first_token_ms === null ? "-" : run.time_to_first_token_ms + " ms", "ttft"]);
  }
  if (run.duration_ms !== null && run.duration_ms !== undefined) metrics.push(["task duration", run.duration_ms + " ms", "duration"]);
  const list = el("dl", {className: "metrics"});
  metrics.forEach(([label, value, key, raw]) => {
    const dd = el("dd", {textContent: String(value)});
    if (key) { dd.className = "metric-" + key; if (raw !== undefined && raw !== null) dd.dataset.value = raw; }
    list.append(el("dt", {textContent: label}), dd);
  });
  box.append(list);
  if (run.review) {
    const review = el("dl", {className: "review-outcome"});
    [["decision", run.review.decision], ["reviewer", run.review.reviewer], ["comment", run.review.comment]].forEach(([label, value]) =>
      review.append(el("dt", {textContent: label}), el("dd", {className: "review-" + label, textContent: value === null || value === undefined ? "-" : String(value)})));
    box.append(el("h3", {textContent: "Review"}), review);
  }
  field("Input", pretty(run.input)); box.append(...payloadLinks(id, run.input));
  field("Output", pretty(run.output)); box.append(...payloadLinks(id, run.output));
  if (run.error) field("Error", `${run.error}: ${run.cause || ""}`);
}

function executionActions(id, execution, restart) {
  const bar = document.getElementById("actions");
  if (!bar) return () => {};
  const result = bar.querySelector(".action-result");
  const say = (text, failed) => { result.textContent = text; result.className = "action-result " + (failed ? "error-line" : "done"); };
  const act = (selector, question, run) => {
    const button = bar.querySelector(selector);
    if (!button) return;
    button.addEventListener("click", () => {
      if (!window.confirm(question)) return;
      button.disabled = true;
      run().catch(e => say(e.message, true)).finally(() => { button.disabled = false; });
    });
  };
  act(".action-stop", `Stop ${execution.name}? Its running states are abandoned and it ends ABORTED.`,
    () => post(`/api/executions/${encodeURIComponent(id)}/stop`, {}).then(() => say("Stop requested.")));
  act(".action-redrive", `Redrive ${execution.name} from the states that did not succeed?`,
    () => post(`/api/executions/${encodeURIComponent(id)}/redrive`).then(() => { say("Redrive requested."); follow(true); }));
  act(".action-restart", `Start ${execution.state_machine} again with this execution's input?`,
    () => post("/api/executions", restart).then(started => {
      say("Started; opening it...");
      const page = "/executions/" + encodeURIComponent(started.execution_id);
      // The read model shows the new execution a moment after its start is published.
      const open = tries => fetch("/api/executions/" + encodeURIComponent(started.execution_id))
        .then(r => { if (r.ok || tries <= 0) window.location.href = page; else setTimeout(() => open(tries - 1), 300); });
      return open(30);
    }));
  let follow = () => {};
  return (status, onFollow) => {
    if (onFollow) follow = onFollow;
    const stop = bar.querySelector(".action-stop"), redrive = bar.querySelector(".action-redrive");
    if (stop) stop.hidden = status !== "RUNNING";
    if (redrive) redrive.hidden = !REDRIVABLE.includes(status);
  };
}

function executionPage(root) {
  let states = jsonOf("states-data") || {}, history = jsonOf("history-data") || [], execution = jsonOf("execution-data") || {};
  let selected = null, source = null;
  const id = root.dataset.execution;
  const show = name => {
    selected = name;
    document.querySelectorAll("svg.graph .state").forEach(g => g.classList.toggle("selected", g.dataset.state === name));
    stateDetails(document.getElementById("details"), name, states[name], id);
  };
  const paint = () => document.querySelectorAll("svg.graph .state").forEach(g => {
    const run = states[g.dataset.state];
    g.setAttribute("class", g.getAttribute("class").replace(/status-[a-z-_]+/, "status-" + (run ? run.status.toLowerCase() : "not-run")));
  });
  const events = eventTable(show);
  const actions = executionActions(id, execution, jsonOf("restart-data"));
  const totals = t => { document.getElementById("totals").textContent = t && t.calls ?
    `${t.calls} model call(s) · tokens in ${t.input_tokens} / out ${t.output_tokens} · cost ${usd(t.cost_usd)}` : ""; };
  const budgetLine = b => {  // the budget and the spend so far (docs/budgets.md), as the template writes it
    const line = document.getElementById("budget"); line.hidden = !b; if (!b) return;
    const limits = b.limits || {}, spent = b.spent;
    line.textContent = `budget: ${spent.tokens} tokens${limits.MaxTokens !== undefined ? " of " + limits.MaxTokens : ""}` +
      ` · ${usd(spent.costUsd)}${limits.MaxCost !== undefined ? " of $" + limits.MaxCost : ""} spent in ${spent.calls} charged call(s)`; };
  const draw = () => {
    timeline(document.getElementById("timeline"), execution, states, show);
    outputPane(document.getElementById("output"), execution.output, id);
  };
  document.querySelectorAll("svg.graph .state").forEach(g => g.addEventListener("click", ev => { ev.stopPropagation(); show(g.dataset.state); }));
  events(history); modelTurns(history); draw();
  let expecting = 0;  // until then, an ended execution is about to run again (a redrive was just asked)
  const follow = redriven => {
    if (redriven) expecting = Date.now() + 15000;
    if (source) source.close();
    source = new EventSource(`/api/executions/${encodeURIComponent(id)}/events`);
    source.addEventListener("status", ev => {
      const data = JSON.parse(ev.data);
      states = data.states; execution = data.execution; paint();
      if (execution.status === "RUNNING") expecting = 0;
      const badge = document.getElementById("status"); badge.textContent = execution.status;
      badge.className = "badge status-" + execution.status.toLowerCase();
      document.getElementById("stopped").textContent = execution.stop_time || "-";
      const error = document.getElementById("error");
      error.hidden = !execution.error; error.textContent = execution.error ? `${execution.error}: ${execution.cause || ""}` : "";
      actions(execution.status); totals(data.totals); budgetLine(data.budget); draw();
      if (data.events !== history.length)
        api(`/api/executions/${encodeURIComponent(id)}/history`).then(h => { history = h; events(history); modelTurns(history); }).catch(() => {});
      if (selected) show(selected);
    });
    source.addEventListener("end", () => { source.close(); if (Date.now() < expecting) setTimeout(follow, 700); });
    source.onerror = () => source.close();
  };
  actions(execution.status, follow);
  follow();
}

// Markdown, a safe subset, built as DOM nodes (never innerHTML): headings, paragraphs, lists,
// code blocks, `code`, **bold**, *italic* and http(s) links. Any HTML in the text stays text.
function inlineMarkdown(text) {
  const nodes = [], pattern = /(`[^`]+`)|(\*\*[^*]+\*\*)|(\*[^*\s][^*]*\*|_[^_\s][^_]*_)|(\[[^\]]+\]\([^)\s]+\))/g;
  let last = 0, m;
  while ((m = pattern.exec(text)) !== null) {
    if (m.index > last) nodes.push(document.createTextNode(text.slice(last, m.index)));
    const t = m[0];
    if (m[1]) nodes.push(el("code", {textContent: t.slice(1, -1)}));
    else if (m[2]) nodes.push(el("strong", {textContent: t.slice(2, -2)}));
    else if (m[3]) nodes.push(el("em", {textContent: t.slice(1, -1)}));
    else {
      const [, label, href] = t.match(/^\[([^\]]+)\]\(([^)\s]+)\)$/);
      nodes.push(/^https?:\/\//i.test(href) ? el("a", {href, textContent: label, rel: "noopener noreferrer", target: "_blank"})
        : document.createTextNode(t));
    }
    last = m.index + t.length;
  }
  if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}

function markdown(text) {
  const root = el("div", {className: "markdown"}), lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  let list = null, paragraph = [];
  const flush = () => {
    if (paragraph.length) root.append(el("p", {}, ...inlineMarkdown(paragraph.join(" "))));
    paragraph = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith("```")) {
      flush(); list = null;
      const code = [];
      while (++i < lines.length && !lines[i].startsWith("```")) code.push(lines[i]);
      root.append(el("pre", {}, el("code", {textContent: code.join("\n")})));
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)$/), item = line.match(/^\s*(?:[-*+]|(\d+)[.)])\s+(.*)$/);
    if (heading) { flush(); list = null; root.append(el("h" + Math.min(6, heading[1].length + 2), {}, ...inlineMarkdown(heading[2]))); }
    else if (item) {
      flush();
      const kind = item[1] ? "ol" : "ul";
      if (!list || list.tagName.toLowerCase() !== kind) { list = el(kind); root.append(list); }
      list.append(el("li", {}, ...inlineMarkdown(item[2])));
    } else if (!line.trim()) { flush(); list = null; }
    else { list = null; paragraph.push(line.trim()); }
  }
  flush();
  return root;
}

function reviewCard(r) {
  const card = el("div", {className: "review"});
  card.dataset.token = r.task_token; card.dataset.execution = r.execution_id;
  const status = el("p", {className: "result"});
  const text = typeof r.content === "string" ? r.content : JSON.stringify(r.content, null, 2);
  const editor = el("textarea", {className: "edit-content", value: text, rows: 18});
  const editing = el("div", {className: "editing", hidden: true}, el("h3", {textContent: "Your edit"}), editor);
  const comment = el("input", {className: "comment", placeholder: "comment (optional)"});
  const buttons = el("p", {className: "buttons"});
  const decide = decision => {
    const body = {task_token: r.task_token, decision, comment: comment.value || null, reviewer: "inbox"};
    if (decision === "edit") body.output = typeof r.content === "string" ? editor.value
      : (() => { try { return JSON.parse(editor.value); } catch (e) { return editor.value; } })();
    if (decision === "reject") body.cause = comment.value || "rejected in the inbox";
    api("/api/reviews/decision", body).then(() => { card.classList.add("decided"); editing.hidden = true;
      status.replaceChildren(el("span", {className: "done", textContent: `${decision} sent for ${r.state_name}`}));
      card.querySelectorAll("button").forEach(b => b.disabled = true); })
      .catch(e => status.replaceChildren(el("span", {className: "error-line", textContent: e.message})));
  };
  card.append(el("h2", {textContent: r.question || r.state_name}),
    el("p", {className: "meta"}, `${r.state_name} of ${r.state_machine ? r.state_machine + " " : ""}`, el("a", {href: "/executions/" + encodeURIComponent(r.execution_id), textContent: r.execution_id})));
  if (r.instructions) card.append(el("p", {className: "instructions", textContent: r.instructions}));
  if (r.context) card.append(el("details", {}, el("summary", {textContent: "Context"}), el("pre", {textContent: pretty(r.context)})));
  card.append(el("h3", {textContent: "Content"}),
    typeof r.content === "string" ? el("div", {className: "content"}, markdown(r.content)) : el("pre", {className: "content", textContent: text}),
    editing, comment, buttons, status);
  (r.decisions || ["approve", "reject"]).forEach(d => {
    if (d !== "edit") { buttons.append(el("button", {className: "decide-" + d, textContent: d, onclick: () => decide(d)})); return; }
    // Edit opens the editor; only "send edit" posts it, so approve never carries a stray edit.
    const send = el("button", {className: "send-edit", textContent: "send edit", hidden: true, onclick: () => decide("edit")});
    const toggle = el("button", {className: "decide-edit", textContent: "edit", onclick: () => {
      editing.hidden = !editing.hidden; send.hidden = editing.hidden; toggle.textContent = editing.hidden ? "edit" : "cancel edit";
      if (!editing.hidden) editor.focus();
    }});
    buttons.append(toggle, send);
  });
  return card;
}

function reviewsPage(root) {
  api("/api/reviews").then(list => {
    root.replaceChildren(...(list.length ? list.map(reviewCard) : [el("p", {className: "empty", textContent: "No pending reviews."})]));
  }).catch(e => root.replaceChildren(el("p", {className: "error-line", textContent: e.message})));
}

const view = document.querySelector(".execution-view"); if (view) executionPage(view);
const inbox = document.getElementById("reviews"); if (inbox) reviewsPage(inbox);
