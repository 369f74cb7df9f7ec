// The try-it page: sends picked, dropped or pasted images to POST /v1/recognize (multipart) and shows each
// reading with its confidence and per-character boxes over the image. No framework, nothing from the internet.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_HEIGHT = 160; // px: tallest an image is shown

function headers() {
  const token = $("token").value.trim();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function errorText(response) {
  try {
    const body = await response.json();
    return `${body.error.code}: ${body.error.message}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

async function loadModels() {
  const response = await fetch("/v1/models", { headers: headers() });
  if (!response.ok) {
    setStatus(`Cannot list models (${await errorText(response)})`, true);
    return;
  }
  const body = await response.json();
  const select = $("model");
  select.replaceChildren(new Option(`${body.default_model} (default)`, ""));
  for (const model of body.models) {
    if (model.name === body.default_model) continue;
    const label = model.state === "loadable" ? `${model.name} (loads on first use)` : model.name;
    select.add(new Option(label, model.name));
  }
}

function percent(value) {
  return `${(100 * value).toFixed(1)}%`;
}

// A detected line's box, as an SVG polygon over the image (corners in % of the image's size).
function lineOutline(line, number, width, height) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "line-box");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const polygon = document.createElementNS(svg.namespaceURI, "polygon");
  polygon.setAttribute("points", line.box.map((p) => `${p.x || 0},${p.y || 0}`).join(" "));
  if (line.confidence < 0.5) polygon.classList.add("unsure");
  const title = document.createElementNS(svg.namespaceURI, "title");
  title.textContent = `${number}. ${line.text} (${percent(line.confidence)})`;
  polygon.append(title);
  svg.append(polygon);
  return svg;
}

function renderResult(file, result) {
  const card = document.createElement("article");
  card.className = "result";
  card.dataset.id = result.id;

  const frame = document.createElement("div");
  frame.className = "frame";
  const image = document.createElement("img");
  image.alt = result.id;
  image.src = URL.createObjectURL(file);
  frame.append(image);
  const page = result.lines && result.lines.length > 0;
  if (page) card.classList.add("page");
  image.addEventListener("load", () => {
    const width = image.naturalWidth;
    const height = image.naturalHeight;
    // The frame takes the image's own shape (at most MAX_HEIGHT tall), so boxes placed in % of it line up.
    frame.style.aspectRatio = `${width} / ${height}`;
    // A whole page fills its column and the screen's height (85vh), whichever is smaller: readable beside its lines.
    frame.style.width = page ? `min(100%, calc(85vh * ${width / height}))` : `min(100%, ${(MAX_HEIGHT * width) / height}px)`;
    for (const [i, line] of (result.lines || []).entries()) {
      frame.append(lineOutline(line, i + 1, width, height));
    }
    for (const char of result.chars) {
      const box = document.createElement("span");
      box.className = "box";
      box.style.left = `${(100 * char.x_start) / width}%`;
      box.style.width = `${(100 * Math.max(1, char.x_end - char.x_start)) / width}%`;
      box.title = `${char.text} ${percent(char.confidence)}`;
      box.dataset.char = char.text;
      if (char.confidence < 0.5) box.classList.add("unsure");
      frame.append(box);
    }
  }, { once: true });

  const text = document.createElement(page ? "ol" : "p");
  text.className = page ? "lines" : "text";
  if (page) {
    for (const line of result.lines) {
      const item = document.createElement("li");
      item.textContent = line.rejected ? "(rejected)" : line.text;
      item.title = `confidence ${percent(line.confidence)}`;
      if (line.confidence < 0.5) item.classList.add("unsure");
      text.append(item);
    }
  } else {
    text.textContent = result.rejected ? "(rejected: below min confidence)" : result.text || "(nothing read)";
  }

  const meta = document.createElement("p");
  meta.className = "meta";
  meta.textContent = `${result.id} · confidence ${percent(result.confidence)}`;
  if (result.unconstrained_text && result.unconstrained_text !== result.text) {
    meta.textContent += ` · unconstrained "${result.unconstrained_text}" ${percent(result.unconstrained_confidence)}`;
  }
  card.append(frame, text, meta);
  return card;
}

async function recognize(files) {
  const images = [...files].filter((f) => f.type.startsWith("image/") || f.type === "");
  if (!images.length) return;
  const form = new FormData();
  images.forEach((file, i) => form.append("image", file, file.name || `pasted-${i}.png`));
  form.append("char_details", "true");
  if ($("detect").checked) form.append("detect", "true");
  for (const field of ["model", "allowlist", "pattern"]) {
    const value = $(field).value;
    if (value) form.append(field, value);
  }
  setStatus(`Reading ${images.length} image${images.length > 1 ? "s" : ""}…`);
  const started = performance.now();
  let response;
  try {
    response = await fetch("/v1/recognize", { method: "POST", body: form, headers: headers() });
  } catch (err) {
    setStatus(`The server did not answer (${err.message})`, true);
    return;
  }
  if (!response.ok) {
    setStatus(await errorText(response), true);
    return;
  }
  const body = await response.json();
  const ms = Math.round(performance.now() - started);
  setStatus(`${body.results.length} read by ${body.model} in ${ms} ms`);
  const cards = body.results.map((result, i) => renderResult(images[i], result));
  $("results").prepend(...cards);
}

function setUp() {
  const drop = $("drop");
  $("files").addEventListener("change", (event) => {
    recognize(event.target.files);
    event.target.value = "";
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    recognize(event.dataTransfer.files);
  });
  document.addEventListener("paste", (event) => {
    const files = [...event.clipboardData.items].filter((i) => i.kind === "file").map((i) => i.getAsFile());
    if (files.length) recognize(files);
  });
  $("token").value = sessionStorage.getItem("ocr-token") || "";
  $("token").addEventListener("change", () => {
    sessionStorage.setItem("ocr-token", $("token").value);
    loadModels();
  });
  loadModels();
}

setUp();
