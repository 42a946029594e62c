// FaceLedger web app: small enhancements; every page also works without this file.
"use strict";

const SVG = "http://www.w3.org/2000/svg";

function svgEl(name, attrs) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

function mebibytes(bytes) {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

// A file over the server's limit is refused here, in the form, before it is sent: the form keeps
// what was typed, and the message names the file and its own size (not the upload's).
function oversize(file, form) {
  const max = Number(form && form.dataset.maxBytes);
  if (!max || file.size <= max) return null;
  return `${file.name} is ${mebibytes(file.size)}; photos may be at most ${mebibytes(max)}. Choose a smaller photo.`;
}

function setupSizeChecks() {
  document.querySelectorAll("form[data-max-bytes]").forEach((form) => {
    if (form.id === "enrol-form") return; // enrolment reports each file in its results
    const box = form.querySelector(".size-problem, #size-problem");
    const check = () => {
      const problems = [];
      form.querySelectorAll("input[type=file]").forEach((input) => {
        for (const f of input.files || []) { const p = oversize(f, form); if (p) problems.push(p); }
      });
      if (box) { box.textContent = problems.join(" "); box.hidden = problems.length === 0; }
      return problems.length === 0;
    };
    form.querySelectorAll("input[type=file]").forEach((input) => input.addEventListener("change", check));
    form.addEventListener("submit", (e) => { if (!check()) { e.preventDefault(); e.stopImmediatePropagation(); } });
  });
}

// -- search: show the photo's faces and let the officer choose one -------------------------
function setupSearch() {
  const form = document.getElementById("search-form");
  if (!form) return;
  const inputs = Array.from(form.querySelectorAll(".probe-input"));
  const probe = document.getElementById("probe");
  const status = document.getElementById("probe-status");
  const svg = document.getElementById("probe-photo");
  const choice = document.getElementById("face-choice");
  const options = document.getElementById("face-options");
  let photoUrl = null;

  function highlight(index) {
    svg.querySelectorAll("g.face").forEach((g, i) => g.classList.toggle("chosen", i === index));
  }

  function draw(file, body) {
    if (photoUrl) URL.revokeObjectURL(photoUrl);
    photoUrl = URL.createObjectURL(file);
    const w = body.width_px, h = body.height_px;
    svg.replaceChildren();
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.appendChild(svgEl("image", { href: photoUrl, x: 0, y: 0, width: w, height: h, preserveAspectRatio: "none" }));
    options.replaceChildren();
    const fs = Math.max(w, h) / 28;
    body.faces.forEach((f, i) => {
      const g = svgEl("g", { class: i === 0 ? "face chosen" : "face" });
      g.appendChild(svgEl("rect", { x: f.left, y: f.top, width: f.width, height: f.height }));
      const t = svgEl("text", { x: f.left, y: Math.max(f.top - fs * 0.25, fs), "font-size": fs });
      t.textContent = String(i + 1);
      g.appendChild(t);
      g.addEventListener("click", () => {
        const radio = document.getElementById(`face-${i}`);
        if (radio) { radio.checked = true; radio.focus(); highlight(i); }
      });
      svg.appendChild(g);
      const label = document.createElement("label");
      const radio = document.createElement("input");
      radio.type = "radio"; radio.name = "face_index"; radio.value = String(i); radio.id = `face-${i}`;
      radio.checked = i === 0;
      radio.addEventListener("change", () => highlight(i));
      label.appendChild(radio);
      const size = `${Math.round(f.width)}×${Math.round(f.height)} px`;
      label.appendChild(document.createTextNode(`Face ${i + 1}${i === 0 ? " (largest)" : ""}, ${size}`));
      options.appendChild(label);
    });
    const n = body.faces.length;
    choice.hidden = n < 2;
    status.textContent = n === 0 ? "No face was found in this photo. Take or choose another."
      : n === 1 ? "One face found." : `${n} faces found. Choose the face to search.`;
  }

  async function detect(file) {
    probe.hidden = false;
    choice.hidden = true;
    options.replaceChildren();
    svg.replaceChildren();
    status.textContent = "Finding faces…";
    const data = new FormData();
    data.append("csrf_token", form.elements.csrf_token.value);
    data.append("purpose", form.elements.purpose.value);
    data.append("case_reference", form.elements.case_reference.value);
    data.append("image", file);
    let body = null, ok = false;
    try {
      const resp = await fetch(form.dataset.facesUrl, { method: "POST", body: data, credentials: "same-origin" });
      ok = resp.ok;
      body = await resp.json();
    } catch (e) {
      body = null;
    }
    if (!ok || !body || body.error) {
      status.textContent = body && body.error ? `${body.error.title}: ${body.error.message}`
        : "The photo could not be checked. You can still search it.";
      return;
    }
    draw(file, body);
  }

  inputs.forEach((input) => input.addEventListener("change", () => {
    if (!input.files.length) return;
    inputs.forEach((other) => { if (other !== input) other.value = ""; });
    if (oversize(input.files[0], form)) { probe.hidden = true; return; }
    detect(input.files[0]);
  }));
  form.addEventListener("submit", (e) => {
    if (e.defaultPrevented) return;
    const button = document.getElementById("search-button");
    setTimeout(() => { button.disabled = true; button.textContent = "Searching…"; }, 0);
  });
}

// -- enrolment: drag and drop, one upload per file, a progress bar, a result per file -------
function setupEnrol() {
  const form = document.getElementById("enrol-form");
  if (!form) return;
  const input = document.getElementById("images");
  const zone = document.getElementById("dropzone");
  const progress = document.getElementById("enrol-progress");
  const status = document.getElementById("enrol-status");
  const results = document.getElementById("enrol-results");
  let busy = false;

  function send(file, done, total) {
    return new Promise((resolve) => {
      const data = new FormData();
      data.append("csrf_token", form.elements.csrf_token.value);
      data.append("quality_filter", form.elements.quality_filter.value);
      if (form.elements.all_faces.checked) data.append("all_faces", "1");
      data.append("images", file, file.name);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `${form.action}?fragment=1`);
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) progress.value = (done + e.loaded / e.total * 0.9) / total;
      });
      xhr.addEventListener("load", () => {
        if ((xhr.getResponseHeader("content-type") || "").startsWith("text/html") && xhr.responseText.trim().startsWith("<li")) {
          results.insertAdjacentHTML("beforeend", xhr.responseText);
        } else {
          const li = document.createElement("li");
          li.className = "enrol-result failed";
          li.textContent = xhr.status === 413
            ? `${file.name} (${mebibytes(file.size)}) — too large for the server; not enrolled.`
            : `${file.name} — the server could not enrol it (status ${xhr.status}).`;
          results.appendChild(li);
        }
        resolve();
      });
      xhr.addEventListener("error", () => {
        const li = document.createElement("li");
        li.className = "enrol-result failed";
        li.textContent = `${file.name} — the upload failed (network).`;
        results.appendChild(li);
        resolve();
      });
      const tooBig = oversize(file, form);
      if (tooBig) {
        const li = document.createElement("li");
        li.className = "enrol-result failed";
        const name = document.createElement("strong");
        name.textContent = file.name;
        const text = document.createElement("span");
        text.className = "problem-text";
        text.textContent = ` — not sent: ${tooBig}`;
        li.append(name, text);
        results.appendChild(li);
        resolve();
        return;
      }
      xhr.send(data);
    });
  }

  async function enrol(files) {
    if (busy || !files.length) return;
    busy = true;
    progress.hidden = false;
    progress.value = 0;
    results.replaceChildren();
    for (let i = 0; i < files.length; i++) {
      status.textContent = `Enrolling ${i + 1} of ${files.length}: ${files[i].name}`;
      await send(files[i], i, files.length);
      progress.value = (i + 1) / files.length;
    }
    status.textContent = `Done: ${files.length} file${files.length === 1 ? "" : "s"} sent. `;
    const more = document.createElement("a");
    more.href = window.location.pathname;
    more.textContent = "Show the updated faces";
    status.appendChild(more);
    input.value = "";
    busy = false;
    await refreshCounts();
  }

  // The counts and the first page of faces are brought up to date in place after an enrolment.
  async function refreshCounts() {
    try {
      const resp = await fetch(window.location.pathname, { credentials: "same-origin" });
      if (!resp.ok) return;
      const fresh = new DOMParser().parseFromString(await resp.text(), "text/html");
      for (const id of ["describe", "faces-section"]) {
        const now = document.getElementById(id), next = fresh.getElementById(id);
        if (now && next) now.replaceWith(document.importNode(next, true));
      }
    } catch (e) { /* the link above still shows them */ }
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    enrol(Array.from(input.files));
  });
  ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (e) => {
    e.preventDefault();
    zone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    enrol(Array.from(e.dataTransfer.files).filter((f) => /^image\//.test(f.type) || /\.(jpe?g|png)$/i.test(f.name)));
  });
}

// -- streams: live match events (server-sent events) --------------------------------------
function setupStreams() {
  const list = document.getElementById("events");
  if (!list) return;
  const status = document.getElementById("events-status");
  let source = null;
  let session = null;
  // Only the current run's matches are shown: a new watch, or a new run of the processor
  // (another session id), clears the cards of the earlier one.
  const clear = () => list.replaceChildren();
  document.querySelectorAll("button.watch").forEach((button) => button.addEventListener("click", () => {
    // Watching is a search: it needs the purpose and case reference typed in the same row.
    const row = button.closest("tr");
    const purpose = row ? row.querySelector("input[name=purpose]").value.trim() : "";
    const caseRef = row ? row.querySelector("input[name=case_reference]").value.trim() : "";
    if (!purpose || !caseRef) {
      status.textContent = "State a purpose and a case reference in this row to watch: watching is a search, and it is recorded.";
      return;
    }
    if (source) source.close();
    clear();
    session = null;
    const query = new URLSearchParams({ purpose, case_reference: caseRef });
    source = new EventSource(`${button.dataset.events}?${query}`);
    status.textContent = `Watching ${button.textContent.replace(/^Watch /, "")} from now on…`;
    source.addEventListener("problem", (e) => {
      let p = {};
      try { p = JSON.parse(e.data); } catch (err) { /* keep the default */ }
      status.textContent = `${p.title || "Refused"}: ${p.message || ""}`;
      source.close();
    });
    source.addEventListener("match", (e) => {
      let ev;
      try { ev = JSON.parse(e.data); } catch (err) { return; }
      if (ev.session_id && session && ev.session_id !== session) clear();
      session = ev.session_id || session;
      const li = document.createElement("li");
      li.className = "card";
      const img = document.createElement("img");
      img.src = ev.best_shot || "/app/static/face-placeholder.svg";
      img.alt = ev.best_shot ? "Best shot of the matched face" : "No best-shot image";
      img.width = 96; img.height = 96;
      li.appendChild(img);
      const dl = document.createElement("dl");
      const at = typeof ev.timestamp_ms === "number" ? `${(ev.timestamp_ms / 1000).toFixed(2)} s` : null;
      for (const [name, api, value] of [["Enrolled as", "ExternalImageId", ev.external_image_id],
        ["Match score", "Similarity", ev.similarity], ["Time", "", ev.time], ["Video time", "", at],
        ["Face reference", "FaceId", ev.face_id]]) {
        if (value === undefined || value === null) continue;
        const dt = document.createElement("dt");
        if (api) { const abbr = document.createElement("abbr"); abbr.title = api; abbr.textContent = name; dt.appendChild(abbr); }
        else dt.textContent = name;
        const dd = document.createElement("dd");
        dd.textContent = typeof value === "number" ? value.toFixed(1) : String(value);
        dl.append(dt, dd);
      }
      li.appendChild(dl);
      list.prepend(li);
    });
    source.addEventListener("error", () => { status.textContent = "Connection lost; retrying…"; });
  }));
}

// -- ledger: the filters are open on a wide screen, folded on a phone ----------------------
function setupFilters() {
  const box = document.getElementById("filter-box");
  if (box && window.matchMedia("(min-width: 48rem)").matches) box.open = true;
}

// -- review: the searched face and the enrolled face, side by side when asked for (one tap;
// each view is a ledger record)
async function showFace(href, img, alt) {
  const resp = await fetch(href, { credentials: "same-origin" });
  if (!resp.ok) return await resp.text();
  img.src = URL.createObjectURL(await resp.blob());
  img.alt = alt;
  return "";
}

function setupCrops() {
  document.querySelectorAll("a.show-crop").forEach((link) => link.addEventListener("click", async (e) => {
    e.preventDefault();
    const note = link.parentElement.querySelector(".hint");
    const wanted = [[link.href, link.dataset.img, "The searched face (a kept crop)", "Searched face"]];
    if (link.dataset.cropHref) {
      wanted.push([link.dataset.cropHref, link.dataset.cropImg, "The enrolled face (a kept crop)", "Enrolled face"]);
    }
    try {
      const problems = [];
      for (const [href, id, alt, name] of wanted) {
        const problem = await showFace(href, document.getElementById(id), alt);
        if (problem) problems.push(`${name}: ${problem}`);
      }
      link.hidden = true;
      note.textContent = ["Shown: each view is recorded in the ledger.", ...problems].join(" ");
    } catch (err) {
      note.textContent = "The faces could not be loaded.";
    }
  }));
}

document.addEventListener("DOMContentLoaded", () => {
  setupCrops();
  setupFilters();
  setupSizeChecks();
  setupSearch();
  setupEnrol();
  setupStreams();
});
