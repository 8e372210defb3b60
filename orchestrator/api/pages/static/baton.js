// Baton pages: the execution graph (click a state; live over server-sent events) and the review inbox.
"use strict";
const api = (path, body) => fetch(path, body === undefined ? {} : {
  method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)})
  .then(async r => { const data = await r.json(); if (!r.ok) throw new Error(data.error ? data.error.message : r.statusText); return data; });
const el = (tag, attrs, ...children) => { const e = document.createElement(tag); Object.assign(e, attrs || {});
  children.forEach(c => e.append(c)); return e; };
const pretty = v => v === undefined || v === null ? "-" : JSON.stringify(v, null, 2);

function executionPage(root) {
  let states = JSON.parse(document.getElementById("states-data").textContent || "{}");
  let selected = null;
  const show = name => {
    selected = name;
    document.querySelectorAll("svg.graph .state").forEach(g => g.classList.toggle("selected", g.dataset.state === name));
    const run = states[name], box = document.getElementById("details");
    box.replaceChildren(el("h2", {textContent: name}));
    if (!run) { box.append(el("p", {className: "empty", textContent: "This state has not run."})); return; }
    const field = (label, value) => box.append(el("h3", {textContent: label}), el("pre", {className: "field-" + label.toLowerCase(), textContent: value}));
    box.append(el("p", {className: "state-status", innerHTML: `<span class="badge status-${run.status.toLowerCase()}">${run.status}</span> ${run.type} &middot; entered ${run.entries}x &middot; retries ${run.retries}`}));
    field("Input", pretty(run.input)); field("Output", pretty(run.output));
    if (run.error) field("Error", `${run.error}: ${run.cause || ""}`);
    if (run.model || run.tokens) field("Model", `${run.model || "-"}  tokens ${pretty(run.tokens)}`);
  };
  const paint = () => document.querySelectorAll("svg.graph .state").forEach(g => {
    const run = states[g.dataset.state];
    g.setAttribute("class", g.getAttribute("class").replace(/status-[a-z-_]+/, "status-" + (run ? run.status.toLowerCase() : "not-run")));
  });
  document.querySelectorAll("svg.graph .state").forEach(g => g.addEventListener("click", ev => { ev.stopPropagation(); show(g.dataset.state); }));
  const id = root.dataset.execution;
  const source = new EventSource(`/api/executions/${encodeURIComponent(id)}/events`);
  source.addEventListener("status", ev => {
    const data = JSON.parse(ev.data); states = data.states; paint();
    const badge = document.getElementById("status"); badge.textContent = data.execution.status;
    badge.className = "badge status-" + data.execution.status.toLowerCase();
    document.getElementById("stopped").textContent = data.execution.stop_time || "-";
    document.getElementById("output").textContent = pretty(data.execution.output);
    if (selected) show(selected);
  });
  source.addEventListener("end", () => source.close());
  source.onerror = () => source.close();
}

function reviewCard(r) {
  const card = el("div", {className: "review"});
  card.dataset.token = r.task_token; card.dataset.execution = r.execution_id;
  const status = el("p", {className: "result"});
  const editor = el("textarea", {className: "edit-content", value: typeof r.content === "string" ? r.content : JSON.stringify(r.content, null, 2)});
  const comment = el("input", {className: "comment", placeholder: "comment (optional)"});
  const decide = decision => {
    const body = {task_token: r.task_token, decision, comment: comment.value || null, reviewer: "inbox"};
    if (decision === "edit") { try { body.output = JSON.parse(editor.value); } catch (e) { body.output = editor.value; } }
    if (decision === "reject") body.cause = comment.value || "rejected in the inbox";
    api("/api/reviews/decision", body).then(() => { card.classList.add("decided");
      status.replaceChildren(el("span", {className: "done", textContent: `${decision} sent for ${r.state_name}`}));
      card.querySelectorAll("button").forEach(b => b.disabled = true); })
      .catch(e => status.replaceChildren(el("span", {className: "error-line", textContent: e.message})));
  };
  card.append(el("h2", {textContent: r.question || r.state_name}),
    el("p", {className: "meta", innerHTML: ""}, `${r.state_name} of ${r.state_machine ? r.state_machine + " " : ""}`, el("a", {href: "/executions/" + encodeURIComponent(r.execution_id), textContent: r.execution_id})));
  if (r.instructions) card.append(el("p", {textContent: r.instructions}));
  if (r.context) card.append(el("pre", {textContent: "context: " + pretty(r.context)}));
  card.append(el("h3", {textContent: "Content"}));
  card.append((r.decisions || []).includes("edit") ? editor : el("pre", {className: "content", textContent: typeof r.content === "string" ? r.content : pretty(r.content)}));
  card.append(comment, el("br"));
  (r.decisions || ["approve", "reject"]).forEach(d => card.append(el("button", {className: "decide-" + d, textContent: d, onclick: () => decide(d)})));
  card.append(status);
  return card;
}

function reviewsPage(root) {
  api("/api/reviews").then(list => {
    root.replaceChildren(...(list.length ? list.map(reviewCard) : [el("p", {className: "empty", textContent: "No pending reviews."})]));
  }).catch(e => root.replaceChildren(el("p", {className: "error-line", textContent: e.message})));
}

const view = document.querySelector(".execution-view"); if (view) executionPage(view);
const inbox = document.getElementById("reviews"); if (inbox) reviewsPage(inbox);
