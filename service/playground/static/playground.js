// kexue-serve playground: plain JavaScript, no dependency, calls only the origin it came from.
"use strict";

const ROOT = document.body.dataset.root || "";
const KEY_STORAGE = "kexue-serve.playground.apiKey";
const PANELS = {
  embedding: "embeddings-panel",
  qa: "qa-panel",
  generation: "generation-panel",
  density: "density-panel",
};
// Rows a density request starts with; a 413 naming the server's MAX_INPUTS lowers it.
const FIRST_CHUNK_ROWS = 256;

const state = {
  models: [],
  // Whether openapi.json lists `return_evidence` on /v1/qa: true, false, or null (unreadable).
  evidenceListed: null,
  scoreChunk: FIRST_CHUNK_ROWS,
};

// ---------------------------------------------------------------- HTTP

class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

function apiKey() {
  return document.getElementById("api-key").value.trim();
}

function requestHeaders(json) {
  const headers = {};
  if (json) headers["Content-Type"] = "application/json";
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  return headers;
}

// The service's {"detail", "code"} body, or FastAPI's 422 body (a list of problems).
async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (body && typeof body.detail === "string") {
    return new ApiError(response.status, body.code || "", body.detail);
  }
  if (body && Array.isArray(body.detail)) {
    const problems = body.detail.map((p) => {
      const where = (p.loc || []).filter((part) => part !== "body").join(".");
      return where ? `${where}: ${p.msg}` : p.msg;
    });
    const error = new ApiError(response.status, "invalid_request", problems.join("; "));
    error.fields = body.detail.map((p) => (p.loc || []).join("."));
    return error;
  }
  return new ApiError(response.status, "", response.statusText || "the request failed");
}

async function send(method, path, body, signal) {
  let response;
  try {
    response = await fetch(ROOT + path, {
      method,
      headers: requestHeaders(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network_error", `no answer from the server (${error.message})`);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

async function api(method, path, body) {
  const response = await send(method, path, body);
  return response.json();
}

// ---------------------------------------------------------------- page helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("data-")) node.dataset[camel(name.slice(5))] = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function camel(name) {
  return name.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
}

function showError(panel, error) {
  const box = panel.querySelector(":scope > .error");
  if (!error) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  if (!(error instanceof ApiError)) error = new ApiError(0, "page_error", String(error));
  const code = [error.status || "", error.code].filter(Boolean).join(" ");
  const hint = error.status === 401 ? " (type the API key at the top right)" : "";
  box.replaceChildren(el("span", { class: "code", text: code }), error.detail + hint);
  box.dataset.status = String(error.status);
  box.dataset.code = error.code;
  box.hidden = false;
}

function setStatus(form, text) {
  form.querySelector(".status").textContent = text;
}

function numberField(form, name) {
  const raw = form.elements[name].value.trim();
  if (raw === "") return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new ApiError(0, "page_error", `${name}: not a number`);
  return value;
}

function putOptional(body, name, value) {
  if (value !== undefined) body[name] = value;
}

function seconds(started) {
  return `${((performance.now() - started) / 1000).toFixed(2)} s`;
}

// Busy while `work` runs: the form's buttons off, its panel's error cleared.
async function busy(panel, form, work) {
  const buttons = form.querySelectorAll("button[type=submit], button.sample-rows");
  buttons.forEach((b) => (b.disabled = true));
  showError(panel, null);
  try {
    await work();
  } catch (error) {
    if (error.name !== "AbortError") {
      showError(panel, error);
      setStatus(form, "");
    }
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

function selectedModel(panel) {
  const name = panel.querySelector(".model-select").value;
  return (state.models || []).find((m) => m.name === name);
}

// ---------------------------------------------------------------- models

async function loadModels() {
  const panel = document.getElementById("models-panel");
  showError(panel, null);
  let list;
  try {
    list = await api("GET", "/v1/models");
  } catch (error) {
    showError(panel, error);
    panel.querySelector("tbody").replaceChildren();
    state.models = null;
    for (const [task, id] of Object.entries(PANELS)) fillModelSelect(document.getElementById(id), task);
    return;
  }
  state.models = list.data;
  const body = panel.querySelector("tbody");
  body.replaceChildren(
    ...state.models.map((m) =>
      el(
        "tr",
        { "data-model": m.name },
        el("td", {}, el("strong", { text: m.name })),
        el("td", { text: m.task || "—" }),
        el("td", { text: m.family || "—" }),
        el("td", { class: "serving", text: m.serving_version ?? "none" }),
        el(
          "td",
          {},
          ...m.versions.flatMap((v, i) => [
            i ? ", " : "",
            el("span", { class: `state-${v.state}`, title: v.error || "", text: `${v.version} ${v.state}` }),
          ]),
        ),
      ),
    ),
  );
  for (const [task, id] of Object.entries(PANELS)) fillModelSelect(document.getElementById(id), task);
}

function fillModelSelect(panel, task) {
  const select = panel.querySelector(".model-select");
  const previous = select.value;
  const models = (state.models || []).filter((m) => m.task === task);
  select.replaceChildren(
    ...models.map((m) =>
      el("option", {
        value: m.name,
        text: m.serving_version == null ? `${m.name} (not serving)` : `${m.name} v${m.serving_version}`,
      }),
    ),
  );
  if (models.some((m) => m.name === previous)) select.value = previous;
  else {
    const serving = models.find((m) => m.serving_version != null);
    if (serving) select.value = serving.name;
  }
  const none = models.length === 0;
  panel.querySelectorAll("button[type=submit]").forEach((b) => (b.disabled = none));
  if (state.models === null) {
    showError(panel, new ApiError(0, "no_model", "the list of models could not be read (see above)"));
  } else if (none) {
    showError(panel, new ApiError(0, "no_model", `the store has no ${task} model`));
  } else showError(panel, null);
  select.dispatchEvent(new Event("change"));
}

async function readOpenapi() {
  try {
    const doc = await api("GET", "/openapi.json");
    const ref = doc.paths["/v1/qa"].post.requestBody.content["application/json"].schema.$ref;
    const schema = doc.components.schemas[ref.split("/").pop()];
    state.evidenceListed = Object.hasOwn(schema.properties || {}, "return_evidence");
  } catch (_) {
    state.evidenceListed = null; // unknown: the page asks, and retries without on a 422
  }
  const box = document.querySelector("#qa-panel input[name=return_evidence]");
  const note = document.querySelector("#qa-panel .evidence-note");
  box.checked = state.evidenceListed !== false;
  box.disabled = state.evidenceListed === false;
  note.textContent = state.evidenceListed === false ? "(this server does not offer it)" : "";
}

// ---------------------------------------------------------------- embeddings

function setupEmbeddings() {
  const panel = document.getElementById("embeddings-panel");
  const form = panel.querySelector("form");
  form.elements.model.addEventListener("change", () => {
    const model = selectedModel(panel);
    const methods = model && model.family === "jose" ? ["fold_in", "average"] : ["mean"];
    form.elements.method.replaceChildren(
      el("option", { value: "", text: "model's default" }),
      ...methods.map((m) => el("option", { value: m, text: m })),
    );
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(panel, form, async () => {
      const sentences = form.elements.input.value.split("\n").map((s) => s.trim()).filter(Boolean);
      if (sentences.length === 0) throw new ApiError(0, "page_error", "write at least one sentence");
      const body = { model: form.elements.model.value, input: sentences };
      putOptional(body, "method", form.elements.method.value || undefined);
      const started = performance.now();
      setStatus(form, "embedding…");
      const answer = await api("POST", "/v1/embeddings", body);
      const vectors = answer.data.map((d) => d.embedding);
      showMatrix(panel, sentences, vectors);
      panel.querySelector(".summary").textContent =
        `${vectors.length} vectors of ${vectors[0].length} numbers from ${answer.model} ` +
        `version ${answer.version}; ${answer.usage.total_tokens} tokens.`;
      setStatus(form, `answered in ${seconds(started)}`);
    });
  });
}

function cosine(a, b) {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}

function showMatrix(panel, sentences, vectors) {
  const table = panel.querySelector("table.matrix");
  const head = el("tr", {}, el("th", {}), ...sentences.map((_, j) => el("th", { text: j + 1 })));
  const rows = vectors.map((a, i) => {
    const cells = vectors.map((b, j) => {
      const value = cosine(a, b);
      const cell = el("td", { "data-value": String(value), "data-row": i, "data-col": j, text: value.toFixed(3) });
      const strength = Math.min(1, Math.abs(value)) * 0.8;
      cell.style.backgroundColor =
        value >= 0 ? `rgba(214, 39, 40, ${strength})` : `rgba(31, 119, 180, ${strength})`;
      if (strength > 0.55) cell.style.color = "#fff";
      return cell;
    });
    const label = el("th", { class: "sentence", title: sentences[i], text: `${i + 1}. ${sentences[i]}` });
    return el("tr", {}, label, ...cells);
  });
  table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
  panel.querySelector(".result").hidden = false;
}

// ---------------------------------------------------------------- question answering

function setupQA() {
  const panel = document.getElementById("qa-panel");
  const form = panel.querySelector("form");
  const inputs = form.querySelector(".passage-inputs");
  form.querySelector(".add-passage").addEventListener("click", () => {
    inputs.append(el("textarea", { name: "passage", rows: "2" }));
  });
  form.querySelector(".remove-passage").addEventListener("click", () => {
    if (inputs.children.length > 1) inputs.lastElementChild.remove();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(panel, form, async () => {
      const passages = [...inputs.querySelectorAll("textarea")].map((t) => t.value.trim()).filter(Boolean);
      const body = {
        model: form.elements.model.value,
        question: form.elements.question.value.trim(),
        passages,
        extractive: form.elements.extractive.checked,
        force_answer: form.elements.force_answer.checked,
      };
      putOptional(body, "beam_size", numberField(form, "beam_size"));
      putOptional(body, "max_answer_tokens", numberField(form, "max_answer_tokens"));
      const evidence = form.elements.return_evidence.checked && !form.elements.return_evidence.disabled;
      const started = performance.now();
      setStatus(form, "reading…");
      let answer;
      if (evidence) {
        try {
          answer = await api("POST", "/v1/qa", { ...body, return_evidence: true });
        } catch (error) {
          // A server without the field refuses it (422 naming it): ask again without.
          const refused = error.status === 422 && (error.fields || []).some((f) => f.includes("return_evidence"));
          if (!refused) throw error;
          form.elements.return_evidence.checked = false;
          form.elements.return_evidence.disabled = true;
          panel.querySelector(".evidence-note").textContent = "(this server does not offer it)";
          answer = await api("POST", "/v1/qa", body);
        }
      } else {
        answer = await api("POST", "/v1/qa", body);
      }
      showAnswer(panel, passages, answer);
      setStatus(form, `answered in ${seconds(started)}`);
    });
  });
}

function showAnswer(panel, passages, answer) {
  const summary = panel.querySelector(".summary");
  const text = answer.answer === null ? "no answer" : answer.answer;
  summary.replaceChildren(
    el("span", { class: "answer-text", "data-answer": answer.answer ?? "", text }),
    `  score ${answer.score.toFixed(3)}`,
    answer.passage_index === null ? "" : `, passage ${answer.passage_index + 1}`,
    `; ${answer.model} version ${answer.version}`,
  );
  const candidates = answer.candidates || [];
  let chosen = candidates.findIndex((c) => c.text === answer.answer && c.passage_index === answer.passage_index);
  const table = panel.querySelector("table.candidates tbody");
  const select = (index) => {
    chosen = index;
    const shown =
      index >= 0
        ? candidates[index]
        : { text: answer.answer, passage_index: answer.passage_index, evidence: [] };
    table.querySelectorAll("tr").forEach((row, i) => row.classList.toggle("selected", i === index));
    showPassages(panel, passages, shown);
  };
  table.replaceChildren(
    ...candidates.map((c, i) => {
      const row = el(
        "tr",
        { "data-index": i },
        el("td", { text: i + 1 }),
        el("td", { class: "candidate-text", text: c.text }),
        el("td", { class: "candidate-score", text: c.score.toFixed(3) }),
        el("td", { text: c.passage_index === null ? "—" : c.passage_index + 1 }),
        el("td", { text: c.evidence ? c.evidence.length : "—" }),
      );
      row.addEventListener("click", () => select(i));
      return row;
    }),
  );
  panel.querySelector(".evidence-legend").hidden = !candidates.some((c) => c.evidence && c.evidence.length);
  select(chosen);
  panel.querySelector(".result").hidden = false;
}

// Where `answer` occurs in `passage`, ignoring case and white space (the tokenizer's decoding
// may differ in both): [start, end) in the passage's characters, or null.
function findAnswer(passage, answer) {
  if (!answer) return null;
  const kept = [];
  let squeezed = "";
  for (let i = 0; i < passage.length; i++) {
    if (/\s/.test(passage[i])) continue;
    kept.push(i);
    squeezed += passage[i].toLowerCase();
  }
  const needle = answer.replace(/\s+/g, "").toLowerCase();
  if (!needle) return null;
  const at = squeezed.indexOf(needle);
  if (at < 0) return null;
  return [kept[at], kept[at + needle.length - 1] + 1];
}

function showPassages(panel, passages, candidate) {
  const evidence = candidate.evidence || [];
  const heaviest = Math.max(0, ...evidence.map((e) => e.weight));
  const shown = passages.map((passage, index) => {
    const mark = index === candidate.passage_index ? findAnswer(passage, candidate.text) : null;
    const weights = new Float64Array(passage.length);
    for (const span of evidence) {
      if (span.passage_index !== index) continue;
      const start = Math.max(0, span.start);
      const end = Math.min(passage.length, span.end);
      for (let c = start; c < end; c++) weights[c] = Math.max(weights[c], span.weight);
    }
    const box = el("div", { class: "passage", "data-index": index }, el("span", { class: "tag", text: `Passage ${index + 1}` }));
    if (mark) box.classList.add("chosen");
    // Runs of characters alike in answer membership and evidence weight.
    let start = 0;
    for (let c = 1; c <= passage.length; c++) {
      const inAnswer = (i) => Boolean(mark) && i >= mark[0] && i < mark[1];
      if (c < passage.length && inAnswer(c) === inAnswer(start) && weights[c] === weights[start]) continue;
      let node = document.createTextNode(passage.slice(start, c));
      if (inAnswer(start)) node = el("mark", { class: "answer" }, node);
      if (weights[start] > 0) {
        const span = el("span", { class: "evidence", "data-weight": String(weights[start]), title: `evidence weight ${weights[start].toFixed(3)}` }, node);
        const opacity = heaviest > 0 ? 0.15 + 0.7 * (weights[start] / heaviest) : 0;
        span.style.backgroundColor = `rgba(255, 140, 0, ${opacity.toFixed(3)})`;
        node = span;
      }
      box.append(node);
      start = c;
    }
    return box;
  });
  panel.querySelector(".passages-shown").replaceChildren(...shown);
}

// ---------------------------------------------------------------- generation (streamed)

function setupGeneration() {
  const panel = document.getElementById("generation-panel");
  const form = panel.querySelector("form");
  const stop = form.querySelector("button.stop");
  let controller = null;
  form.elements.model.addEventListener("change", () => {
    const manifest = (selectedModel(panel) || {}).manifest || {};
    const labels = Array.isArray(manifest.labels) ? manifest.labels : [];
    form.elements.label.replaceChildren(...labels.map((l) => el("option", { value: l, text: l })));
    form.querySelectorAll(".label-condition").forEach((n) => (n.hidden = labels.length === 0));
    form.querySelector(".vector-condition").hidden = labels.length > 0;
    if (!labels.length) {
      const size = manifest.condition_dim || 1;
      form.elements.vector.value = Array(size).fill("0").join(", ");
      form.elements.vector.title = `${size} numbers (the model's condition_dim)`;
    }
  });
  stop.addEventListener("click", () => controller && controller.abort());
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(panel, form, async () => {
      const labelled = form.querySelector(".vector-condition").hidden;
      const condition = labelled
        ? { label: form.elements.label.value }
        : { vector: parseRow(form.elements.vector.value) };
      const body = {
        model: form.elements.model.value,
        condition,
        prompt: form.elements.prompt.value,
        stream: true,
      };
      for (const name of ["num_samples", "max_new_tokens", "temperature", "top_p", "seed"]) {
        putOptional(body, name, numberField(form, name));
      }
      if (labelled) putOptional(body, "guidance_scale", numberField(form, "guidance_scale"));
      controller = new AbortController();
      stop.disabled = false;
      const started = performance.now();
      setStatus(form, "waiting for the first tokens…");
      try {
        await streamGeneration(panel, form, body, controller.signal, started);
      } catch (error) {
        if (error.name === "AbortError") setStatus(form, `stopped after ${seconds(started)}`);
        throw error;
      } finally {
        stop.disabled = true;
        controller = null;
        panel.querySelectorAll(".sample.streaming").forEach((s) => s.classList.remove("streaming"));
      }
    });
  });
}

async function streamGeneration(panel, form, body, signal, started) {
  const response = await send("POST", "/v1/generate", body, signal);
  const count = body.num_samples || 1;
  const boxes = [];
  const result = panel.querySelector(".samples");
  result.replaceChildren();
  for (let i = 0; i < count; i++) {
    const text = el("div", { class: "text" }, el("span", { class: "prompt", text: body.prompt }), el("span", { class: "written" }));
    const box = el("div", { class: "sample streaming", "data-index": i, "data-chunks": "0" }, text, el("div", { class: "meta", text: `sample ${i + 1}: writing…` }));
    boxes.push(box);
    result.append(box);
  }
  result.hidden = false;
  let events = 0;
  let done = false;
  const onEvent = (name, data) => {
    if (name === "error") {
      const error = JSON.parse(data);
      throw new ApiError(response.status, error.code || "", error.detail || data);
    }
    if (data === "[DONE]") {
      done = true;
      return;
    }
    const chunk = JSON.parse(data);
    const box = boxes[chunk.index];
    if (!box) return;
    events += 1;
    box.querySelector(".written").append(chunk.text);
    box.dataset.chunks = String(Number(box.dataset.chunks) + 1);
    box.dataset.tokens = String(chunk.tokens);
    const meta = box.querySelector(".meta");
    if (chunk.finish_reason) {
      box.classList.remove("streaming");
      box.dataset.finish = chunk.finish_reason;
      meta.textContent = `sample ${chunk.index + 1}: ${chunk.tokens} tokens, finished (${chunk.finish_reason}); version ${chunk.version}`;
    } else {
      meta.textContent = `sample ${chunk.index + 1}: ${chunk.tokens} tokens…`;
    }
    setStatus(form, `streaming: ${events} events in ${seconds(started)}`);
  };
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done: ended } = await reader.read();
    if (ended) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(name, data.join("\n"));
    }
  }
  result.dataset.done = String(done);
  setStatus(form, done ? `done: ${events} events in ${seconds(started)}` : "the stream ended early");
}

// ---------------------------------------------------------------- density

function parseRow(text) {
  const parts = text.split(/[\s,;]+/).filter(Boolean);
  const row = parts.map(Number);
  if (!row.length || row.some((v) => !Number.isFinite(v))) {
    throw new ApiError(0, "page_error", `not a row of numbers: "${text.trim()}"`);
  }
  return row;
}

// The server's limit from a 413 ("...; the most is 8 (MAX_INPUTS)"), or null.
function limitFrom(error) {
  const found = error instanceof ApiError && error.status === 413 && /the most is (\d+)/.exec(error.detail);
  return found ? Number(found[1]) : null;
}

async function scoreRows(model, rows, logdet, progress) {
  const logProb = [];
  const bits = [];
  let at = 0;
  while (at < rows.length) {
    const chunk = rows.slice(at, at + state.scoreChunk);
    let answer;
    try {
      answer = await api("POST", "/v1/density/score", { model, inputs: chunk, logdet });
    } catch (error) {
      const most = limitFrom(error);
      if (most && most < chunk.length) {
        state.scoreChunk = most; // MAX_INPUTS: ask again in smaller pieces
        continue;
      }
      throw error;
    }
    logProb.push(...answer.log_prob);
    bits.push(...answer.bits_per_dim);
    at += chunk.length;
    if (progress) progress(at, rows.length);
  }
  return { logProb, bits };
}

async function sampleRows(model, count, seed) {
  try {
    return { ...(await api("POST", "/v1/density/sample", { model, num_samples: count, seed })), capped: null };
  } catch (error) {
    const most = limitFrom(error);
    if (!most || most >= count) throw error;
    const answer = await api("POST", "/v1/density/sample", { model, num_samples: most, seed });
    return { ...answer, capped: most };
  }
}

const VIRIDIS = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];

function colour(t) {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
}

function setupDensity() {
  const panel = document.getElementById("density-panel");
  const [modelForm, mapForm, rowsForm] = panel.querySelectorAll("form");
  const canvas = document.getElementById("density-canvas");
  const hover = panel.querySelector(".hover");
  let grid = null; // the last map: {size, xs, ys, logProb}

  modelForm.addEventListener("submit", (event) => event.preventDefault());
  modelForm.elements.model.addEventListener("change", () => {
    const model = selectedModel(panel);
    const manifest = (model || {}).manifest || {};
    const dim = manifest.input_dim || 0;
    const kind = manifest.levels ? `discrete, ${manifest.levels} levels a value` : "continuous";
    panel.querySelector(".model-info").textContent = model ? `${dim} dimensions, ${kind}` : "";
    const two = dim === 2;
    mapForm.hidden = !two;
    panel.querySelector(".map").hidden = true;
    grid = null;
    if (two) {
      const pre = manifest.preprocessing || {};
      const box = boundsFrom(pre, manifest.levels);
      ["x_min", "x_max", "y_min", "y_max"].forEach((name, i) => {
        mapForm.elements[name].value = box ? String(round(box[i])) : "";
      });
    }
    const mean = (standardization(manifest.preprocessing) || {}).mean;
    rowsForm.elements.rows.value = dim ? (mean || Array(dim).fill(0)).map(round).join(", ") : "";
    panel.querySelector(".rows-result").hidden = true;
  });

  mapForm.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(panel, mapForm, async () => {
      const model = modelForm.elements.model.value;
      const logdet = modelForm.elements.logdet.value;
      const size = Math.round(numberField(mapForm, "grid") || 60);
      const count = numberField(mapForm, "num_samples") || 0;
      const started = performance.now();
      let samples = [];
      let capped = null;
      if (count > 0) {
        setStatus(mapForm, "sampling…");
        const drawn = await sampleRows(model, count, numberField(mapForm, "seed"));
        samples = drawn.samples;
        capped = drawn.capped;
      }
      let box = ["x_min", "x_max", "y_min", "y_max"].map((name) => numberField(mapForm, name));
      if (box.some((v) => v === undefined) || box[0] >= box[1] || box[2] >= box[3]) {
        box = boundsOfSamples(samples);
        ["x_min", "x_max", "y_min", "y_max"].forEach((name, i) => (mapForm.elements[name].value = String(round(box[i]))));
      }
      const [x0, x1, y0, y1] = box;
      const xs = Array.from({ length: size }, (_, i) => x0 + ((i + 0.5) * (x1 - x0)) / size);
      const ys = Array.from({ length: size }, (_, j) => y1 - ((j + 0.5) * (y1 - y0)) / size);
      const rows = ys.flatMap((y) => xs.map((x) => [x, y]));
      const { logProb } = await scoreRows(model, rows, logdet, (done, all) =>
        setStatus(mapForm, `scored ${done} of ${all} points…`),
      );
      grid = { size, xs, ys, box, logProb };
      const range = drawMap(canvas, grid, samples);
      drawLegend(document.getElementById("density-legend"));
      panel.querySelector(".legend-max").textContent = range.max.toFixed(2);
      panel.querySelector(".legend-min").textContent = `≤ ${range.min.toFixed(2)}`;
      panel.querySelector(".map-summary").textContent =
        `log p in nats on a ${size}×${size} grid (${rows.length} points` +
        `, ${state.scoreChunk} a request), ${samples.length} samples as dots` +
        (capped ? ` (the server's most is ${capped})` : "") + ".";
      panel.querySelector(".map").hidden = false;
      setStatus(mapForm, `drawn in ${seconds(started)}`);
    });
  });

  const pointAt = (event) => {
    if (!grid) return null;
    const rect = canvas.getBoundingClientRect();
    const fx = (event.clientX - rect.left) / rect.width;
    const fy = (event.clientY - rect.top) / rect.height;
    const [x0, x1, y0, y1] = grid.box;
    const i = Math.min(grid.size - 1, Math.max(0, Math.floor(fx * grid.size)));
    const j = Math.min(grid.size - 1, Math.max(0, Math.floor(fy * grid.size)));
    return { x: x0 + fx * (x1 - x0), y: y1 - fy * (y1 - y0), cell: grid.logProb[j * grid.size + i] };
  };
  canvas.addEventListener("mousemove", (event) => {
    const p = pointAt(event);
    if (!p) return;
    const value = p.cell === null ? "not finite" : p.cell.toFixed(3);
    hover.textContent = `x ${p.x.toFixed(3)}, y ${p.y.toFixed(3)}: log p ≈ ${value} (grid cell)`;
  });
  canvas.addEventListener("click", (event) => {
    const p = pointAt(event);
    if (!p) return;
    rowsForm.elements.rows.value = `${round(p.x)}, ${round(p.y)}`;
    rowsForm.requestSubmit();
  });

  rowsForm.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(panel, rowsForm, async () => {
      const rows = rowsForm.elements.rows.value.split("\n").filter((l) => l.trim()).map(parseRow);
      if (!rows.length) throw new ApiError(0, "page_error", "paste at least one row");
      const started = performance.now();
      const { logProb, bits } = await scoreRows(modelForm.elements.model.value, rows, modelForm.elements.logdet.value);
      showScores(panel, rows, logProb, bits);
      setStatus(rowsForm, `scored in ${seconds(started)}`);
    });
  });
  rowsForm.querySelector(".sample-rows").addEventListener("click", () => {
    busy(panel, rowsForm, async () => {
      const drawn = await sampleRows(modelForm.elements.model.value, 5, undefined);
      rowsForm.elements.rows.value = drawn.samples.map((r) => r.map(round).join(", ")).join("\n");
      setStatus(rowsForm, `sampled with seed ${drawn.seed}; press Score to score them`);
    });
  });
}

function round(v) {
  return Math.round(v * 1e4) / 1e4;
}

// mean ± 3.5 std from a standardising model's preprocessing; the value range of a discrete one.
function boundsFrom(pre, levels) {
  if (levels) return [-0.5, levels - 0.5, -0.5, levels - 0.5];
  const standard = standardization(pre);
  if (standard && standard.mean.length === 2) {
    const [mx, my] = standard.mean;
    const [sx, sy] = standard.std;
    return [mx - 3.5 * sx, mx + 3.5 * sx, my - 3.5 * sy, my + 3.5 * sy];
  }
  return null;
}

// The manifest's per-feature mean and std (`preprocessing.standardization`), or null.
function standardization(pre) {
  const found = (pre || {}).standardization || {};
  return Array.isArray(found.mean) && Array.isArray(found.std) ? found : null;
}

function boundsOfSamples(samples) {
  if (!samples.length) return [-3, 3, -3, 3];
  const xs = samples.map((r) => r[0]);
  const ys = samples.map((r) => r[1]);
  const pad = (lo, hi) => {
    const margin = Math.max(0.15 * (hi - lo), 1e-3);
    return [lo - margin, hi + margin];
  };
  return [...pad(Math.min(...xs), Math.max(...xs)), ...pad(Math.min(...ys), Math.max(...ys))];
}

function drawMap(canvas, grid, samples) {
  const finite = grid.logProb.filter((v) => v !== null).sort((a, b) => a - b);
  const max = finite.length ? finite[finite.length - 1] : 0;
  // The lowest 2% share the darkest colour: a few far-off cells would flatten the rest.
  const min = finite.length ? Math.min(finite[Math.floor(0.02 * (finite.length - 1))], max - 1e-6) : -1;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(canvas.width, canvas.height);
  for (let py = 0; py < canvas.height; py++) {
    const j = Math.min(grid.size - 1, Math.floor((py / canvas.height) * grid.size));
    for (let px = 0; px < canvas.width; px++) {
      const i = Math.min(grid.size - 1, Math.floor((px / canvas.width) * grid.size));
      const v = grid.logProb[j * grid.size + i];
      const [r, g, b] = colour(v === null ? 0 : (v - min) / (max - min));
      const at = 4 * (py * canvas.width + px);
      image.data[at] = r;
      image.data[at + 1] = g;
      image.data[at + 2] = b;
      image.data[at + 3] = 255;
    }
  }
  ctx.putImageData(image, 0, 0);
  const [x0, x1, y0, y1] = grid.box;
  ctx.lineWidth = 1;
  ctx.strokeStyle = "rgba(0, 0, 0, 0.8)";
  ctx.fillStyle = "#ffffff";
  let inside = 0;
  for (const [x, y] of samples) {
    const px = ((x - x0) / (x1 - x0)) * canvas.width;
    const py = ((y1 - y) / (y1 - y0)) * canvas.height;
    if (px < 0 || py < 0 || px > canvas.width || py > canvas.height) continue;
    inside += 1;
    ctx.beginPath();
    ctx.arc(px, py, 2.5, 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
  }
  canvas.dataset.grid = String(grid.size);
  canvas.dataset.min = String(min);
  canvas.dataset.max = String(max);
  canvas.dataset.scored = String(grid.logProb.length);
  canvas.dataset.samples = String(samples.length);
  canvas.dataset.samplesInside = String(inside);
  return { min, max };
}

function drawLegend(canvas) {
  const ctx = canvas.getContext("2d");
  for (let y = 0; y < canvas.height; y++) {
    const [r, g, b] = colour(1 - y / (canvas.height - 1));
    ctx.fillStyle = `rgb(${r}, ${g}, ${b})`;
    ctx.fillRect(0, y, canvas.width, 1);
  }
}

function showScores(panel, rows, logProb, bits) {
  const fmt = (v) => (v === null ? "not finite" : v.toFixed(4));
  panel.querySelector(".scores tbody").replaceChildren(
    ...rows.map((row, i) =>
      el(
        "tr",
        { "data-log-prob": logProb[i] === null ? "" : String(logProb[i]) },
        el("td", { text: i + 1 }),
        el("td", { class: "row", text: row.map(round).join(", ") }),
        el("td", { class: "log-prob", text: fmt(logProb[i]) }),
        el("td", { text: fmt(bits[i]) }),
      ),
    ),
  );
  panel.querySelector(".rows-result").hidden = false;
}

// ---------------------------------------------------------------- tabs, key, start

function showTab(id) {
  document.querySelectorAll(".tabs button").forEach((tab) => {
    const on = tab.dataset.panel === id;
    tab.setAttribute("aria-selected", String(on));
    document.getElementById(tab.dataset.panel).hidden = !on;
  });
}

function setupTabs() {
  document.querySelectorAll(".tabs button").forEach((tab) => {
    tab.addEventListener("click", () => {
      showTab(tab.dataset.panel);
      history.replaceState(null, "", `#${tab.dataset.panel.replace(/-panel$/, "")}`);
    });
  });
  const wanted = `${location.hash.slice(1)}-panel`;
  if (document.getElementById(wanted) && document.getElementById(wanted).classList.contains("task")) {
    showTab(wanted);
  }
}

function setupKey() {
  const input = document.getElementById("api-key");
  const note = document.getElementById("key-state");
  const describe = () => {
    note.textContent = sessionStorage.getItem(KEY_STORAGE) ? "key kept for this tab" : "no key";
  };
  input.value = sessionStorage.getItem(KEY_STORAGE) || "";
  describe();
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = apiKey();
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
    describe();
    start();
  });
  document.getElementById("key-clear").addEventListener("click", () => {
    input.value = "";
    sessionStorage.removeItem(KEY_STORAGE);
    describe();
  });
}

async function start() {
  document.body.dataset.ready = "false";
  await Promise.all([loadModels(), readOpenapi()]);
  document.body.dataset.ready = "true";
}

setupKey();
setupTabs();
setupEmbeddings();
setupQA();
setupGeneration();
setupDensity();
document.getElementById("models-reload").addEventListener("click", () => start());
start();
