// Baton studio: click a state, edit an LLM Task, Test it (TestState), Compare variants, Save a version.
// Every text from a definition, a prompt, a model or an execution goes in as textContent/value: never as HTML.
"use strict";
(() => {
  const data = JSON.parse(document.getElementById("studio-data").textContent);
  const panel = document.getElementById("panel");
  const edited = structuredClone(data.definition);  // the definition with every edit made so far
  const loaded = {};        // state -> {ref, text}: the prompt as read from the store
  const promptEdits = {};   // state -> text: an edited prompt, not saved yet
  const recorded = {};      // state -> what it did in the chosen execution (/api/executions/{id}/states)
  let selected = null, executionsList = null;

  const request = async (method, path, body) => {
    const init = {method, headers: {}};
    if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    const response = await fetch(path, init);
    let payload = null;
    try { payload = await response.json(); } catch (e) { payload = null; }
    if (!response.ok) {
      const error = new Error(payload && payload.error ? payload.error.message : `${response.status} ${response.statusText}`);
      error.status = response.status;
      throw error;
    }
    return payload;
  };
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag); Object.assign(node, attrs || {});
    children.forEach(child => node.append(child)); return node;
  };
  const pretty = v => v === undefined || v === null ? "-" : (typeof v === "string" ? v : JSON.stringify(v, null, 2));
  const isObject = v => v !== null && typeof v === "object" && !Array.isArray(v);

  function findState(definition, name) {
    const states = isObject(definition) && isObject(definition.States) ? definition.States : {};
    for (const [key, state] of Object.entries(states)) {
      if (key === name) return state;
      const nested = [...(state.Branches || []), state.ItemProcessor, state.Iterator].filter(isObject);
      for (const scope of nested) { const found = findState(scope, name); if (found) return found; }
    }
    return null;
  }

  // The definition a Test runs: an edited prompt goes inline as `Prompt` in place of `PromptRef`.
  function definitionForTest(name) {
    const definition = structuredClone(edited);
    if (promptEdits[name] !== undefined) {
      const parameters = findState(definition, name).Parameters;
      delete parameters.PromptRef; parameters.Prompt = promptEdits[name];
    }
    return definition;
  }

  // ---------------------------------------------------------------- the state panel

  const FIELDS = [["Model", "text"], ["Provider", "text"], ["PromptRef", "text"], ["Temperature", "number"], ["MaxTokens", "number"]];

  function fieldInput(name, parameters, key, type) {
    const dynamic = parameters[key + ".$"];
    const input = el("input", {className: "field-" + key.toLowerCase(), type: dynamic ? "text" : type,
      value: dynamic ? `${key}.$ ${dynamic}` : (parameters[key] ?? ""), disabled: !!dynamic});
    if (key === "Temperature") { input.step = "0.1"; input.min = "0"; input.max = "2"; }
    if (key === "MaxTokens") { input.step = "1"; input.min = "1"; }
    input.addEventListener("change", () => {
      const target = findState(edited, name).Parameters, value = input.value.trim();
      if (value === "") delete target[key];
      else target[key] = type === "number" ? Number(value) : value;
      if (key === "PromptRef") loadPrompt(name, true);
    });
    return el("label", {className: "field"}, el("span", {textContent: key}), input);
  }

  function promptBox(name, parameters) {
    const box = el("div", {className: "prompt"});
    const status = el("p", {className: "prompt-status meta"});
    const text = el("textarea", {className: "prompt-text", rows: 8, spellcheck: false});
    box.append(el("h3", {textContent: "Prompt"}), text, status);
    if (typeof parameters.Prompt === "string") {  // an inline prompt is part of the definition itself
      text.value = parameters.Prompt; status.textContent = "inline Prompt: saved with the definition";
      text.addEventListener("input", () => { findState(edited, name).Parameters.Prompt = text.value; });
    } else if (data.llm_states[name] && data.llm_states[name].prompt_editable && typeof parameters.PromptRef === "string") {
      text.addEventListener("input", () => {
        if (loaded[name] && text.value !== loaded[name].text) promptEdits[name] = text.value; else delete promptEdits[name];
        promptStatus(name);
      });
      loadPrompt(name, false);
    } else {
      text.disabled = true; status.textContent = "The prompt is chosen when the state runs (PromptRef.$ or Messages): edit it in the definition.";
    }
    return box;
  }

  async function loadPrompt(name, refChanged) {
    const ref = findState(edited, name).Parameters.PromptRef;
    if (refChanged) delete promptEdits[name];
    if (!loaded[name] || loaded[name].ref !== ref) {
      try { const prompt = await request("GET", "/api/studio/prompts?ref=" + encodeURIComponent(ref)); loaded[name] = {ref, text: prompt.text}; }
      catch (e) { loaded[name] = {ref, text: "", error: e.message}; }
    }
    if (selected !== name) return;
    const text = panel.querySelector("textarea.prompt-text");
    text.value = promptEdits[name] ?? loaded[name].text;
    promptStatus(name);
  }

  function promptStatus(name) {
    const status = panel.querySelector(".prompt-status"); if (!status || selected !== name) return;
    const prompt = loaded[name];
    status.className = "prompt-status meta" + (prompt && prompt.error ? " error-line" : promptEdits[name] !== undefined ? " edited" : "");
    status.textContent = prompt && prompt.error ? prompt.error
      : promptEdits[name] !== undefined ? `edited (from ${prompt.ref}): Test sends it inline; Save publishes it as a new version`
      : `from ${prompt ? prompt.ref : "the store"}`;
  }

  function inputBox(name) {
    const box = el("div", {className: "input-box"});
    const picker = el("select", {className: "recorded-execution"}, el("option", {value: "", textContent: "input typed below"}));
    const input = el("textarea", {className: "state-input", rows: 6, spellcheck: false, value: "{}"});
    const note = el("p", {className: "input-note meta"});
    box.append(el("h3", {textContent: "Input"}), el("label", {className: "field"}, el("span", {textContent: "from execution"}), picker), input, note);
    const choose = async id => {
      delete recorded[name];
      if (!id) { note.textContent = ""; return; }
      try {
        const progress = await request("GET", `/api/executions/${encodeURIComponent(id)}/states`);
        const run = progress.states[name];
        if (!run) { note.textContent = "This state did not run in that execution."; return; }
        recorded[name] = run; input.value = pretty(run.input);
        note.textContent = `the state's recorded input in ${id}; its recorded answer is shown next to the test's`;
      } catch (e) { note.textContent = e.message; }
    };
    picker.addEventListener("change", () => choose(picker.value));
    listExecutions().then(list => {
      list.forEach(e => picker.append(el("option", {value: e.execution_id, textContent: `${e.name} (${e.status}${e.version ? ", version " + e.version : ""})`})));
      if (data.execution && list.some(e => e.execution_id === data.execution)) { picker.value = data.execution; choose(data.execution); }
    });
    return box;
  }

  async function listExecutions() {
    if (executionsList === null) {
      try { executionsList = await request("GET", `/api/executions?state_machine=${encodeURIComponent(data.name)}&limit=50`); }
      catch (e) { executionsList = []; }
    }
    return executionsList;
  }

  function show(name) {
    selected = name;
    document.querySelectorAll("svg.graph .state").forEach(g => g.classList.toggle("selected", g.dataset.state === name));
    const state = findState(edited, name) || {};
    panel.replaceChildren(el("h2", {textContent: name}),
      el("p", {className: "meta", textContent: [state.Type, state.Resource].filter(Boolean).join(" \u00b7 ")}));
    const llm = data.llm_states[name] && isObject(state.Parameters);
    if (llm) {
      const fields = el("div", {className: "fields"});
      FIELDS.forEach(([key, type]) => fields.append(fieldInput(name, state.Parameters, key, type)));
      panel.append(fields, promptBox(name, state.Parameters));
    } else {
      panel.append(el("h3", {textContent: "Definition"}), el("pre", {className: "state-definition", textContent: pretty(state)}));
    }
    const results = el("div", {className: "results"});
    const testButton = el("button", {className: "test", textContent: "Test", onclick: () => runTest(name, testButton, results)});
    panel.append(inputBox(name), el("div", {className: "actions"}, testButton, ...saveControls()), results);
    if (llm) showCompare(name); else document.getElementById("compare-body").replaceChildren(
      el("p", {className: "empty", textContent: "Compare runs an LLM state's variants on a dataset: click an LLM state."}));
  }

  // ---------------------------------------------------------------- Test

  async function runTest(name, button, results) {
    let input;
    try { input = JSON.parse(panel.querySelector("textarea.state-input").value || "{}"); }
    catch (e) { results.replaceChildren(el("p", {className: "error-line", textContent: "The input is not JSON: " + e.message})); return; }
    button.disabled = true;
    results.replaceChildren(el("p", {className: "running meta", textContent: "Testing\u2026"}));
    try {
      const report = await request("POST", "/api/test-state", {definition: definitionForTest(name), state: name, input});
      results.replaceChildren(resultTable(report, recorded[name]));
    } catch (e) {
      results.replaceChildren(el("p", {className: "error-line test-error", textContent: e.message}));
    } finally { button.disabled = false; }
  }

  function resultTable(report, run) {
    const inspection = report.inspectionData || {}, llm = inspection.llm || {}, result = inspection.result;
    const tokens = (run && run.tokens) || {};
    const rows = [
      ["status", "Status", report.status, run && run.status],
      ["model", "Model", llm.model, run && run.model],
      ["provider", "Provider", llm.provider, run && run.provider],
      ["input-tokens", "Input tokens", llm.inputTokens, tokens.input_tokens ?? tokens.InputTokens],
      ["output-tokens", "Output tokens", llm.outputTokens, tokens.output_tokens ?? tokens.OutputTokens],
      ["latency", "Latency (ms)", llm.latencyMs, run && run.latency_ms],
      ["ttft", "Time to first token (ms)", llm.timeToFirstTokenMs, run && run.time_to_first_token_ms],
      ["cost", "Cost (USD)", llm.costUsd, run && run.cost_usd],
      ["prompt", "Prompt sent", (llm.messages || []).map(m => `[${m.role}] ${m.content}`).join("\n") || undefined, undefined],
      ["answer", "Answer", result && typeof result === "object" && "Text" in result ? result.Text : result, undefined],
      ["output", "Output", report.error ? `${report.error}: ${report.cause || ""}` : report.output, run && (run.error ? `${run.error}: ${run.cause || ""}` : run.output)],
    ];
    const table = el("table", {className: "test-result"},
      el("thead", {}, el("tr", {}, el("th"), el("th", {textContent: "This test"}), el("th", {textContent: run ? "Recorded" : "Recorded (pick an execution)"}))));
    const body = el("tbody");
    rows.forEach(([key, label, mine, theirs]) => body.append(el("tr", {className: "row-" + key}, el("th", {textContent: label}),
      el("td", {className: "test-" + key}, el("pre", {textContent: pretty(mine)})),
      el("td", {className: "recorded-" + key}, el("pre", {textContent: pretty(theirs)})))));
    table.append(body);
    return table;
  }

  // ---------------------------------------------------------------- Save

  function saveControls() {
    if (!data.may_save) {
      return [el("button", {className: "save", textContent: "Save", disabled: true,
        title: data.registered ? "Saving a version needs the operator role" : "Deploy this state machine first"}),
        el("span", {className: "save-note meta", textContent: data.registered ? " Save needs the operator role." : " Not registered: Save is off."})];
    }
    const description = el("input", {className: "save-description", placeholder: "what changed (optional)"});
    const button = el("button", {className: "save", textContent: "Save new version"});
    button.addEventListener("click", () => save(button, description));
    return [button, description];
  }

  async function save(button, description) {
    const out = document.getElementById("save-result");
    const prompts = Object.entries(promptEdits).map(([state, text]) => ({state, text}));
    button.disabled = true; out.className = "meta"; out.textContent = "Saving\u2026";
    try {
      const saved = await request("POST", "/api/studio/save", {name: data.name, definition: edited, prompts,
                                                               description: description.value || null});
      Object.keys(edited).forEach(k => delete edited[k]); Object.assign(edited, saved.definition);
      saved.prompts.forEach(p => { loaded[p.state] = {ref: p.ref, text: promptEdits[p.state]}; delete promptEdits[p.state]; });
      data.version = saved.version;
      document.getElementById("opened-version").textContent = `version ${saved.version}`;
      const link = el("a", {href: `/studio/${encodeURIComponent(data.name)}?version=${saved.version}`, textContent: `version ${saved.version}`});
      out.className = "meta saved";
      out.replaceChildren(saved.changed ? "Saved " : "Nothing changed: still ", link,
        ...saved.prompts.map(p => ` \u00b7 ${p.state}: ${p.from} \u2192 ${p.ref}`));
      if (selected) show(selected);
    } catch (e) {
      out.className = "error-line"; out.textContent = e.message;
    } finally { button.disabled = false; }
  }

  // ---------------------------------------------------------------- Compare

  const SVG = "http://www.w3.org/2000/svg";
  const svgEl = (tag, attrs, text) => {
    const node = document.createElementNS(SVG, tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, String(v)));
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const modelsInDefinition = () => [...new Set(Object.values(data.llm_states).map(s => s.parameters && s.parameters.Model).filter(m => typeof m === "string"))];

  function variantRow(values) {
    const row = el("div", {className: "variant-row"});
    [["name", "name"], ["model", "Model"], ["provider", "Provider"], ["prompt_ref", "PromptRef"], ["temperature", "Temperature"], ["max_tokens", "MaxTokens"]]
      .forEach(([key, label]) => row.append(el("input", {className: "variant-" + key, value: values[key] ?? "",
        placeholder: key === "name" ? label : `${label} (as edited)`, title: key === "name" ? label : `${label}: empty keeps the edited definition's`})));
    row.append(el("button", {className: "remove-variant", textContent: "\u00d7", title: "remove", onclick: () => row.remove()}));
    return row;
  }

  function showCompare(name) {
    const body = document.getElementById("compare-body");
    const parameters = findState(edited, name).Parameters;
    const current = typeof parameters.Model === "string" ? parameters.Model : "";
    const other = modelsInDefinition().find(m => m !== current) || current;
    const typed = panel.querySelector("textarea.state-input");
    const dataset = el("textarea", {className: "compare-dataset", rows: 5, spellcheck: false,
      value: JSON.stringify({id: "1", input: JSON.parse(typed && typed.value.trim() ? typed.value : "{}")})});
    // "current" overrides nothing: the edited definition as the panel shows it.
    const variants = el("div", {className: "variants"}, variantRow({name: "current"}), variantRow({name: "other", model: other}));
    const scorer = el("select", {className: "compare-scorer"}, ...["auto", "contains", "exact", "json_schema", "regex"].map(k => el("option", {value: k, textContent: k})));
    const path = el("input", {className: "compare-path", placeholder: "scored JSONPath, e.g. $.outline"});
    const pattern = el("input", {className: "compare-pattern", placeholder: "regex pattern"});
    const judge = el("input", {className: "compare-judge", placeholder: "judge model (optional)"});
    const out = el("div", {className: "compare-result"});
    const run = el("button", {className: "compare-run", textContent: "Compare"});
    run.addEventListener("click", () => runCompare(name, {dataset, variants, scorer, path, pattern, judge}, run, out));
    body.replaceChildren(
      el("p", {className: "meta", textContent: `Runs ${name} of the edited definition for each variant on each dataset line (JSONL: {"input": ..., "expected": ...}; at most 20 lines).`}),
      el("h3", {textContent: "Dataset"}), dataset,
      el("h3", {textContent: "Variants"}), variants,
      el("button", {className: "add-variant", textContent: "Add variant", onclick: () => { if (variants.children.length < 4) variants.append(variantRow({name: "v" + (variants.children.length + 1)})); }}),
      el("h3", {textContent: "Score"}), el("div", {className: "actions"}, scorer, path, pattern, judge, run), out);
  }

  async function runCompare(name, form, button, out) {
    const number = v => v.trim() === "" ? null : Number(v);
    const variants = [...form.variants.querySelectorAll(".variant-row")].map(row => {
      const get = key => row.querySelector(".variant-" + key).value.trim();
      return {name: get("name"), model: get("model") || null, provider: get("provider") || null, prompt_ref: get("prompt_ref") || null,
              temperature: number(get("temperature")), max_tokens: number(get("max_tokens"))};
    });
    const scorers = form.scorer.value === "auto" ? [] : [Object.fromEntries(Object.entries({kind: form.scorer.value,
      path: form.path.value.trim() || null, pattern: form.pattern.value.trim() || null}).filter(([, v]) => v !== null))];
    const body = {definition: definitionForTest(name), state: name, dataset: form.dataset.value, variants, scorers,
                  judge: form.judge.value.trim() ? {model: form.judge.value.trim()} : null};
    button.disabled = true;
    out.replaceChildren(el("p", {className: "running meta", textContent: `Comparing ${variants.length} variants\u2026`}));
    try {
      const report = await request("POST", "/api/studio/evals", body);
      out.replaceChildren(summaryTable(report.summaries), chart(report.summaries), answersTable(report, variants.map(v => v.name)));
      const notes = [...report.problems, ...(report.truncated ? [`${report.truncated} dataset line(s) beyond the first 20 were not run`] : [])];
      if (notes.length) out.append(el("ul", {className: "compare-problems"}, ...notes.map(p => el("li", {textContent: p}))));
    } catch (e) {
      out.replaceChildren(el("p", {className: "error-line compare-error", textContent: e.message}));
    } finally { button.disabled = false; }
  }

  function summaryTable(summaries) {
    const columns = [["variant", "Variant"], ["completed", "ok"], ["failed", "failed"], ["score", "score"], ["latency_p50_ms", "p50 ms"],
                     ["ttft_p50_ms", "ttft ms"], ["input_tokens_sum", "in tok"], ["output_tokens_sum", "out tok"], ["cost_usd", "cost $"]];
    return el("table", {className: "compare-summary"}, el("thead", {}, el("tr", {}, ...columns.map(([, label]) => el("th", {textContent: label})))),
      el("tbody", {}, ...summaries.map(s => el("tr", {className: "summary-row"}, ...columns.map(([key]) => el("td", {className: "summary-" + key, textContent: pretty(s[key])}))))));
  }

  // Score (y) against latency p50 (x) per variant; the circle's area grows with the cost.
  function chart(summaries) {
    const width = 640, height = 280, left = 48, bottom = 36, top = 28, right = 24;
    const latencies = summaries.map(s => s.latency_p50_ms || 0), costs = summaries.map(s => s.cost_usd || 0);
    const maxX = Math.max(1, ...latencies) * 1.15, maxCost = Math.max(...costs);
    const x = v => left + (v / maxX) * (width - left - right), y = v => height - bottom - v * (height - bottom - top);
    const svg = svgEl("svg", {class: "compare-chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img"});
    svg.append(svgEl("title", {}, "score vs latency p50 per variant; circle size: cost"),
      svgEl("line", {class: "axis", x1: left, y1: height - bottom, x2: width - right, y2: height - bottom}),
      svgEl("line", {class: "axis", x1: left, y1: top, x2: left, y2: height - bottom}),
      svgEl("text", {x: width / 2, y: height - 6, "text-anchor": "middle"}, "latency p50 (ms) \u2192   circle size: cost (USD)"),
      svgEl("text", {x: left, y: top - 12, "text-anchor": "middle"}, "score"), svgEl("text", {x: left - 6, y: y(1) + 4, "text-anchor": "end"}, "1"),
      svgEl("text", {x: left - 6, y: y(0) + 4, "text-anchor": "end"}, "0"),
      svgEl("text", {x: width - right, y: height - bottom + 14, "text-anchor": "end"}, String(Math.round(maxX))));
    const colours = ["#2f6fd0", "#d0562f", "#2f9d55", "#8a4fd0"];
    summaries.forEach((s, i) => {
      const cx = x(s.latency_p50_ms || 0), cy = y(s.score ?? 0), r = 6 + (maxCost > 0 ? 12 * Math.sqrt((s.cost_usd || 0) / maxCost) : 0);
      const point = svgEl("g", {class: "point-group", "data-variant": s.variant});
      point.append(svgEl("circle", {class: "point", cx, cy, r, fill: colours[i % colours.length]}),
        // Labels of points on the right half go to their left, so they stay inside the chart.
        svgEl("text", cx > width / 2 ? {x: cx - r - 4, y: cy + 4 + 12 * i, "text-anchor": "end"} : {x: cx + r + 4, y: cy + 4 + 12 * i},
              `${s.variant}  score ${pretty(s.score)}  $${pretty(s.cost_usd)}`),
        svgEl("title", {}, `${s.variant}: score ${pretty(s.score)}, p50 ${pretty(s.latency_p50_ms)} ms, cost ${pretty(s.cost_usd)} USD`));
      svg.append(point);
    });
    return el("div", {className: "chart"}, svg);
  }

  function answersTable(report, names) {
    const byKey = {};
    report.records.forEach(r => { byKey[r.item_id + "\u0000" + r.variant] = r; });
    const head = el("tr", {}, el("th", {textContent: "Input"}), el("th", {textContent: "Expected"}), ...names.map(n => el("th", {textContent: n})));
    const rows = report.items.map(item => el("tr", {className: "answer-row"}, el("td", {}, el("pre", {textContent: pretty(item.input)})),
      el("td", {}, el("pre", {textContent: pretty(item.expected)})),
      ...names.map(n => {
        const r = byKey[item.id + "\u0000" + n];
        const text = !r ? "-" : r.status === "completed" ? (r.text ?? pretty(r.output)) : `${r.error}: ${r.cause || ""}`;
        return el("td", {className: "answer", title: r ? `score ${pretty(r.score)} \u00b7 ${pretty(r.latency_ms)} ms` : ""},
          el("pre", {textContent: text}), el("span", {className: "meta", textContent: r ? `score ${pretty(r.score)}` : ""}));
      })));
    return el("table", {className: "compare-answers"}, el("thead", {}, head), el("tbody", {}, ...rows));
  }

  document.querySelectorAll("svg.graph .state").forEach(g => g.addEventListener("click", event => {
    event.stopPropagation(); show(g.dataset.state);
  }));
})();
