"use strict";
// The review page of `ocr label --review`: least-sure readings first, keyboard first, every decision saved at once.

const state = { items: [], current: 0, undo: [] };
const $ = (id) => document.getElementById(id);

function setStatus(message, error = false) {
  $("status").textContent = message;
  $("status").classList.toggle("error", error);
}

function showSummary(summary, adaptCommand) {
  const done = summary.reviewed, total = done + summary.draft;
  $("bar").style.width = total ? `${(100 * done / total).toFixed(1)}%` : "0";
  $("progress").setAttribute("aria-valuenow", total ? Math.round(100 * done / total) : 0);
  $("counts").textContent = `reviewed ${done} of ${total} · corrected ${summary.corrected} · ` +
    `left ${summary.draft} · expected errors left ${summary.expected_errors_left.toFixed(1)}` +
    (summary.unreadable ? ` · unreadable ${summary.unreadable}` : "");
  $("counts").dataset.reviewed = done;
  $("counts").dataset.corrected = summary.corrected;
  $("counts").dataset.left = summary.draft;
  $("adapt").hidden = !adaptCommand;
  $("adapt-command").textContent = adaptCommand || "";
}

function drawChars(frame, img, chars) {
  frame.querySelectorAll(".box").forEach((box) => box.remove());
  const width = img.naturalWidth;
  if (!width) return;
  for (const [ch, x0, x1] of chars || []) {
    const box = document.createElement("span");
    box.className = "box";
    box.dataset.char = ch;
    box.title = ch;
    box.style.left = `${(100 * x0 / width).toFixed(2)}%`;
    box.style.width = `${Math.max(0.3, 100 * (x1 - x0) / width).toFixed(2)}%`;
    frame.appendChild(box);
  }
}

function render(item, index) {
  const card = document.createElement("article");
  card.className = "item";
  card.dataset.image = item.image;
  card.dataset.status = item.status;
  const frame = document.createElement("div");
  frame.className = "frame";
  const img = document.createElement("img");
  img.alt = item.image;
  img.loading = "lazy";
  img.src = `/api/image?path=${encodeURIComponent(item.image)}`;
  img.addEventListener("load", () => drawChars(frame, img, item.status === "draft" ? item.chars : []));
  frame.appendChild(img);
  const row = document.createElement("div");
  row.className = "row";
  const input = document.createElement("input");
  input.className = "text";
  input.value = item.text;
  input.spellcheck = false;
  input.setAttribute("aria-label", `label of ${item.image}`);
  input.addEventListener("keydown", (event) => onKey(event, index));
  input.addEventListener("focus", () => select(index, false));
  const meta = document.createElement("span");
  meta.className = "meta";
  const confidence = item.confidence == null ? "no reading" : `${(100 * item.confidence).toFixed(1)}% sure`;
  meta.append(`${confidence} · ${item.image}` + (item.page ? ` (page ${item.page})` : "") + " ");
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.textContent = item.status;
  meta.appendChild(badge);
  row.append(input, meta);
  card.append(frame, row);
  return card;
}

function refresh(index) {
  const item = state.items[index], card = $("items").children[index];
  card.dataset.status = item.status;
  card.querySelector(".badge").textContent = item.status;
  card.querySelector(".text").value = item.text;
  const img = card.querySelector("img");
  if (img.complete) drawChars(card.querySelector(".frame"), img, item.status === "draft" ? item.chars : []);
}

function select(index, focus = true) {
  if (index < 0 || index >= state.items.length) return;
  const cards = $("items").children;
  cards[state.current]?.classList.remove("current");
  state.current = index;
  cards[index].classList.add("current");
  if (focus) {
    const input = cards[index].querySelector(".text");
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
    cards[index].scrollIntoView({ block: "center" });
  }
}

function nextOpen(after) {
  for (let i = after + 1; i < state.items.length; i++) if (state.items[i].status === "draft") return i;
  return Math.min(after + 1, state.items.length - 1);
}

async function save(index, status, text) {
  const item = state.items[index];
  const response = await fetch("/api/label", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ image: item.image, status, text }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  state.items[index] = { ...item, ...body.row };
  refresh(index);
  showSummary(body.summary, body.adapt_command);
}

async function decide(index, status, text) {
  const before = state.items[index];
  try {
    await save(index, status, text);
  } catch (error) {
    setStatus(`not saved: ${error.message}`, true);
    return;
  }
  state.undo.push({ index, status: before.status, text: before.text });
  setStatus(`saved ${state.items[index].image}: ${state.items[index].status}`);
  select(nextOpen(index));
}

async function undo() {
  const last = state.undo.pop();
  if (!last) { setStatus("nothing to undo"); return; }
  try {
    await save(last.index, last.status, last.text);
  } catch (error) {
    state.undo.push(last);
    setStatus(`undo not saved: ${error.message}`, true);
    return;
  }
  setStatus(`undone: ${state.items[last.index].image} is ${last.status} again`);
  select(last.index);
}

function onKey(event, index) {
  const input = event.target;
  if (event.key === "Enter") {
    event.preventDefault();
    decide(index, "confirmed", input.value);
  } else if (event.key === "Escape") {
    event.preventDefault();
    decide(index, "skipped", null);
  } else if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
    event.preventDefault();
    undo();
  } else if (event.key === "ArrowDown") {
    event.preventDefault();
    select(index + 1);
  } else if (event.key === "ArrowUp") {
    event.preventDefault();
    select(index - 1);
  }
}

async function load() {
  try {
    const response = await fetch("/api/state");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = await response.json();
    state.items = body.items;
    $("folder").textContent = body.folder;
    $("items").replaceChildren(...state.items.map(render));
    showSummary(body.summary, body.adapt_command);
    if (!state.items.length) { setStatus("nothing to review: run `ocr label` on a folder of images first"); return; }
    const first = state.items.findIndex((item) => item.status === "draft");
    select(first < 0 ? 0 : first);
    document.body.dataset.ready = "1";
  } catch (error) {
    setStatus(`cannot load the review: ${error.message}`, true);
  }
}

load();
