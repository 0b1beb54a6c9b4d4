// Search: text as you type, by image, "more like this"; what to match words by (the picture, the text read
// in it, or both); filters; the result grid and its states. While
// nothing is searched, the library's timeline (timeline.js) shows instead, with the same filters.

import { apiFetch } from "./api.js";
import { el, formatSimilarity, formatTimestamp, icon, plural } from "./format.js";
import { matchedLabel, matchedWords } from "./frametext.js";

const PAGE_SIZE = 48;
const TYPING_DELAY_MS = 250;
const MODES = new Set(["both", "visual", "text"]); // words matched by: CLIP and the text read (OCR), or one

const $ = (id) => document.getElementById(id);
const baseName = (path) => path.split("/").pop() || path;

export class Search {
  constructor({ onOpen, onFailure, timeline }) {
    this.onOpen = onOpen;
    this.onFailure = onFailure;
    this.timeline = timeline;
    this.form = $("search-form");
    this.input = $("search-input");
    this.chip = $("query-chip");
    this.chipImage = $("query-chip-image");
    this.chipLabel = $("query-chip-label");
    this.grid = $("results");
    this.status = $("results-status");
    this.message = $("results-message");
    this.loadMore = $("load-more");
    this.minSimilarity = $("min-similarity");
    this.minSimilarityValue = $("min-similarity-value");
    this.folder = $("folder-filter");
    this.group = $("group-videos");
    this.takenAfter = $("taken-after");
    this.takenBefore = $("taken-before");
    this.camera = $("camera-filter");
    this.near = $("near-filter");
    this.library = $("library-filter");
    this.wantedLibrary = ""; // a library id from the URL, chosen once the list of libraries arrives

    this.reference = null; // {kind: "image", file, label, url} | {kind: "similar", frameId, label, url}
    this.defaultPlaceholder = this.input.placeholder;
    this.results = [];
    this.offset = 0;
    this.controller = null;
    this.typingTimer = null;
    this.libraryEmpty = false;
    this.lastRun = null;

    this.bind();
    this.restoreFromUrl();
  }

  bind() {
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.run();
    });
    this.input.addEventListener("input", () => {
      // Words refine a query image; for "more like this" they start a new search instead.
      if (this.reference && this.reference.kind === "similar" && this.query) this.dropReference();
      clearTimeout(this.typingTimer);
      this.typingTimer = setTimeout(() => this.run(), TYPING_DELAY_MS);
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Backspace" && !this.input.value && this.reference) this.clearReference();
    });
    $("query-chip-clear").addEventListener("click", () => this.clearReference());
    $("image-search-button").addEventListener("click", () => $("image-search-input").click());
    $("image-search-input").addEventListener("change", (event) => {
      const [file] = event.target.files;
      if (file) this.searchByImage(file);
      event.target.value = "";
    });
    for (const radio of document.querySelectorAll('input[name="type"], input[name="mode"]')) {
      radio.addEventListener("change", () => this.run());
    }
    this.minSimilarity.addEventListener("input", () => {
      this.minSimilarityValue.textContent = Number(this.minSimilarity.value).toFixed(2);
      clearTimeout(this.typingTimer);
      this.typingTimer = setTimeout(() => this.run(), TYPING_DELAY_MS);
    });
    this.folder.addEventListener("change", () => this.run());
    this.folder.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        this.run();
      }
    });
    this.group.addEventListener("change", () => this.run());
    for (const input of [this.library, this.takenAfter, this.takenBefore, this.camera, this.near]) {
      input.addEventListener("change", () => this.run());
    }
    for (const input of [this.camera, this.near]) {
      input.addEventListener("keydown", (event) => {
        if (event.key === "Enter") {
          event.preventDefault();
          this.run();
        }
      });
    }
    this.loadMore.addEventListener("click", () => this.run({ append: true }));
  }

  /** How words are matched: "both" (the default), "visual" (what the picture shows) or "text" (words in it). */
  get mode() {
    const checked = document.querySelector('input[name="mode"]:checked');
    return checked ? checked.value : "both";
  }

  get filters() {
    const type = document.querySelector('input[name="type"]:checked').value;
    const minSimilarity = Number(this.minSimilarity.value);
    return {
      type, folder: this.folder.value.trim(), minSimilarity, group: this.group.checked,
      takenAfter: this.takenAfter.value, takenBefore: this.takenBefore.value, camera: this.camera.value.trim(),
      near: this.near.value.replace(/\s+/g, ""), library: this.library.value || this.wantedLibrary,
    };
  }

  /** The filters as API parameters, shared by search and the library timeline (empty ones are left out). */
  filterParams() {
    const { type, folder, library, takenAfter, takenBefore, camera, near } = this.filters;
    return { type, folder, library, taken_after: takenAfter, taken_before: takenBefore, camera, near };
  }

  /** Any filter that narrows what is shown (the similarity threshold counts only for searches). */
  hasFilters() {
    return Object.values(this.filterParams()).some(Boolean);
  }

  get query() {
    return this.input.value.trim();
  }

  restoreFromUrl() {
    const params = new URLSearchParams(location.search);
    this.input.value = params.get("q") || "";
    const type = params.get("type") || "";
    const radio = document.querySelector(`input[name="type"][value="${CSS.escape(type)}"]`);
    if (radio) radio.checked = true;
    const mode = params.get("mode");
    if (MODES.has(mode)) document.querySelector(`input[name="mode"][value="${mode}"]`).checked = true;
    this.folder.value = params.get("folder") || "";
    const min = Number(params.get("min_similarity"));
    if (min > 0 && min <= 1) this.minSimilarity.value = String(min);
    this.minSimilarityValue.textContent = Number(this.minSimilarity.value).toFixed(2);
    if (params.get("group") === "0") this.group.checked = false;
    this.takenAfter.value = params.get("taken_after") || "";
    this.takenBefore.value = params.get("taken_before") || "";
    this.camera.value = params.get("camera") || "";
    this.near.value = params.get("near") || "";
    this.wantedLibrary = params.get("library") || "";
  }

  saveToUrl() {
    const { minSimilarity, group } = this.filters;
    const params = new URLSearchParams();
    if (this.query && !this.reference) params.set("q", this.query);
    for (const [name, value] of Object.entries(this.filterParams())) {
      if (value) params.set(name, value);
    }
    if (minSimilarity > 0) params.set("min_similarity", minSimilarity.toFixed(2));
    if (!group) params.set("group", "0");
    if (this.mode !== "both") params.set("mode", this.mode);
    const search = params.toString();
    history.replaceState(null, "", search ? `?${search}` : location.pathname);
  }

  /** The model's own calibration (GET /health text_match): where a text starts to match a picture, marked
   * on the similarity slider, since it differs between model families (CLIP about 0.2, SigLIP about 0.1). */
  setTextMatch(textMatch, family) {
    if (typeof textMatch !== "number") return;
    $("text-match-mark").value = String(textMatch);
    this.minSimilarity.title = `With this model (${family || "its family"}), words start to match a picture at a ` +
      `similarity of about ${textMatch.toFixed(2)} (the mark)`;
  }

  setLibraryEmpty(empty) {
    const changed = this.libraryEmpty !== empty;
    this.libraryEmpty = empty;
    if (changed && !this.hasQuery()) this.showIdle();
  }

  hasQuery() {
    return Boolean(this.query || this.reference);
  }

  searchByImage(file) {
    this.setReference({ kind: "image", file, label: file.name || "dropped image", url: URL.createObjectURL(file) });
  }

  moreLike(result) {
    this.setReference({
      kind: "similar", frameId: result.frame_id,
      label: `Like ${baseName(result.name)}${result.timestamp != null ? ` at ${formatTimestamp(result.timestamp)}` : ""}`,
      url: result.thumb_url,
    });
  }

  setReference(reference) {
    if (this.reference) this.dropReference();
    this.reference = reference;
    this.input.value = "";
    this.chip.hidden = false;
    this.chipImage.hidden = false;
    this.chipImage.src = reference.url;
    this.chipLabel.textContent = reference.label;
    this.input.placeholder = reference.kind === "image" ? "Add words to refine (optional)" : "Or type to search in words";
    this.run();
    window.scrollTo({ top: 0, behavior: "smooth" });
  }

  clearReference() {
    if (!this.reference) return;
    this.dropReference();
    this.input.focus();
    this.run();
  }

  dropReference() {
    if (this.reference.kind === "image") URL.revokeObjectURL(this.reference.url);
    this.reference = null;
    this.chip.hidden = true;
    this.chipImage.removeAttribute("src");
    this.input.placeholder = this.defaultPlaceholder;
  }

  /** Repeat the current search from the top, or refresh the timeline (after new media were indexed). */
  refresh() {
    if (this.hasQuery()) this.run();
    else if (!this.libraryEmpty) this.timeline.refresh();
  }

  request(offset, signal) {
    const { minSimilarity, group } = this.filters;
    const params = {
      k: PAGE_SIZE, offset: offset || undefined, ...this.filterParams(),
      min_similarity: minSimilarity > 0 ? minSimilarity : undefined,
      group: group ? "video" : undefined,
    };
    const mode = this.mode !== "both" ? this.mode : undefined; // only words are matched by mode
    const reference = this.reference;
    if (reference && reference.kind === "similar") {
      return apiFetch(`search/similar/${reference.frameId}`, { params, signal });
    }
    if (reference && reference.kind === "image") {
      const body = new FormData();
      body.append("file", reference.file, reference.file.name || "query.jpg");
      if (this.query) body.append("q", this.query);
      return apiFetch("search/image", { method: "POST", params: { ...params, mode: this.query ? mode : undefined }, body, signal });
    }
    return apiFetch("search", { params: { q: this.query, ...params, mode }, signal });
  }

  async run({ append = false } = {}) {
    clearTimeout(this.typingTimer);
    if (this.controller) this.controller.abort();
    this.saveToUrl();
    if (!this.hasQuery()) {
      this.controller = null;
      this.showIdle();
      return;
    }
    this.timeline.hide();
    const controller = new AbortController();
    this.controller = controller;
    const offset = append ? this.offset : 0;
    this.lastRun = { append };
    this.setLoading(append);
    try {
      const reply = await this.request(offset, controller.signal);
      if (controller.signal.aborted) return;
      const page = reply.results || [];
      this.results = append ? [...this.results, ...page] : page;
      this.offset = offset + page.length;
      this.render(page, { append, partial: reply.partial, more: page.length >= PAGE_SIZE });
    } catch (error) {
      if (error.name === "AbortError" || controller.signal.aborted) return;
      this.showError(error);
      this.onFailure(error);
    } finally {
      if (this.controller === controller) {
        this.controller = null;
        this.grid.removeAttribute("aria-busy");
      }
    }
  }

  describeQuery() {
    const reference = this.reference;
    if (reference && reference.kind === "similar") return reference.label.replace(/^Like /, "like ");
    if (reference && reference.kind === "image") return this.query ? `your image + “${this.query}”` : "your image";
    return `“${this.query}”`;
  }

  setLoading(append) {
    this.grid.setAttribute("aria-busy", "true");
    this.status.replaceChildren(el("span", { class: "spinner", "aria-hidden": "true" }), " Searching…");
    this.status.className = "results-status loading";
    if (append) return;
    this.message.hidden = true;
    this.loadMore.hidden = true;
    if (!this.grid.children.length || this.grid.classList.contains("skeleton")) {
      this.grid.classList.add("skeleton");
      this.grid.replaceChildren(...Array.from({ length: 8 }, () => el("li", { class: "result placeholder" })));
    } else {
      this.grid.classList.add("stale");
    }
  }

  render(page, { append, partial, more }) {
    this.grid.classList.remove("skeleton", "stale");
    const start = append ? this.results.length - page.length : 0;
    const cards = page.map((result, i) => this.card(result, start + i));
    if (append) this.grid.append(...cards);
    else this.grid.replaceChildren(...cards);
    this.loadMore.hidden = !more;
    this.status.className = "results-status";

    if (!this.results.length) {
      this.status.textContent = "";
      this.showNoResults();
      return;
    }
    this.message.hidden = true;
    const parts = [el("span", {}, `${plural(this.results.length, "result")}${more ? "+" : ""} for ${this.describeQuery()}`)];
    if (partial) {
      parts.push(el("span", { class: "partial-note", role: "note" },
        "Some index shards did not answer, so results may be incomplete."));
    }
    this.status.replaceChildren(...parts);
  }

  card(result, index) {
    const isVideo = result.kind === "video";
    const similarity = formatSimilarity(result.similarity);
    const time = isVideo && result.timestamp != null ? formatTimestamp(result.timestamp) : null;
    const moments = (result.moments || []).length;
    const words = matchedWords(result); // found (also) by the text read in it
    const label = [result.name, isVideo ? `video${time ? ` at ${time}` : ""}` : "photo", `similarity ${similarity}`,
      moments > 1 ? `${moments} matching moments` : null, words.length ? matchedLabel(words) : null,
    ].filter(Boolean).join(", ");
    const image = el("img", { src: result.thumb_url, alt: "", loading: "lazy", decoding: "async" });
    image.addEventListener("error", () => image.parentElement.classList.add("broken"), { once: true });
    const open = el("button", { type: "button", class: "result-open", "aria-label": `Open ${label}`, onclick: () => this.onOpen(index) },
      image,
      el("span", { class: "badge similarity", title: "Cosine similarity (higher is closer)" }, similarity),
      isVideo ? el("span", { class: "badge time" }, icon("play", "icon tiny"), time || "video") : null,
      moments > 1 ? el("span", { class: "badge moments" }, plural(moments, "moment")) : null,
      words.length ? el("span", { class: "badge matched", title: "Found by the words written in it" }, matchedLabel(words)) : null);
    const similar = el("button", {
      type: "button", class: "link-button", "aria-label": `More like ${baseName(result.name)}`,
      onclick: () => this.moreLike(result),
    }, "More like this");
    return el("li", { class: `result ${result.kind}`, dataset: { frameId: result.frame_id, kind: result.kind } },
      open,
      el("div", { class: "result-footer" }, el("span", { class: "result-name", title: result.name }, baseName(result.name)), similar));
  }

  showIdle() {
    this.grid.classList.remove("skeleton", "stale");
    this.grid.replaceChildren();
    this.results = [];
    this.loadMore.hidden = true;
    this.status.textContent = "";
    this.message.className = "empty-state";
    if (this.libraryEmpty) {
      this.timeline.hide();
      this.message.hidden = false;
      this.message.replaceChildren(
        el("h2", {}, "Your library is empty"),
        el("p", {}, "Add a folder of photos and videos with “Add photos and videos”. When indexing finishes, describe what you are looking for."));
      return;
    }
    this.message.hidden = true; // the home page: the whole library by when it was taken
    this.timeline.show(this.filterParams());
  }

  showNoResults() {
    const { minSimilarity } = this.filters;
    const filtered = this.hasFilters();
    const tips = [];
    if (minSimilarity > 0) tips.push(`lower the minimum similarity (now ${minSimilarity.toFixed(2)})`);
    if (filtered) tips.push("clear the filters");
    if (!this.reference) tips.push("describe it differently");
    if (this.mode === "text" && !this.reference) tips.push("match by Both (only words written in the pictures count now)");
    this.message.hidden = false;
    this.message.className = "empty-state";
    const clear = filtered || minSimilarity > 0
      ? el("button", { type: "button", class: "button", onclick: () => this.clearFilters() }, "Clear filters")
      : null;
    this.message.replaceChildren(
      el("h2", {}, `No matches for ${this.describeQuery()}`),
      el("p", {}, tips.length ? `Try to ${tips.join(", or ")}.` : "Nothing in the library matches yet."),
      clear);
  }

  showError(error) {
    this.grid.classList.remove("skeleton", "stale");
    this.grid.replaceChildren();
    this.results = [];
    this.loadMore.hidden = true;
    this.status.className = "results-status";
    this.status.textContent = "";
    this.message.hidden = false;
    this.message.className = "empty-state error";
    this.message.replaceChildren(
      el("h2", {}, error.status === 0 ? "The server is not answering" : "Search failed"),
      el("p", { role: "alert" }, error.message),
      el("button", { type: "button", class: "button", onclick: () => this.run(this.lastRun || {}) }, "Try again"));
  }

  clearFilters() {
    document.querySelector('input[name="type"][value=""]').checked = true;
    this.folder.value = "";
    for (const input of [this.library, this.takenAfter, this.takenBefore, this.camera, this.near]) input.value = "";
    this.wantedLibrary = "";
    this.minSimilarity.value = "0";
    this.minSimilarityValue.textContent = "0.00";
    this.run();
  }

  setFolders(folders) {
    $("folder-options").replaceChildren(...folders.map((folder) => el("option", { value: folder })));
  }

  /** The libraries the library filter offers (GET /libraries, as the Libraries panel lists them). */
  setLibraries(libraries) {
    const chosen = this.library.value || this.wantedLibrary;
    this.library.replaceChildren(el("option", { value: "" }, "any"),
      ...libraries.map(({ id, name }) => el("option", { value: String(id) }, name)));
    this.library.value = libraries.some(({ id }) => String(id) === chosen) ? chosen : "";
    this.wantedLibrary = "";
    // a chosen library that was removed narrows nothing any more
    if (chosen && !this.library.value) this.run();
  }

  /** The cameras the camera filter offers (GET /cameras). */
  async loadCameras() {
    try {
      const { cameras } = await apiFetch("cameras");
      $("camera-options").replaceChildren(...cameras.map(({ camera }) => el("option", { value: camera })));
    } catch {
      // a suggestion list only: typing a camera works without it
    }
  }
}
