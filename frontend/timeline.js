// The Library view, the home page while nothing is searched: every photo and video by when it was taken,
// newest first, grouped by month (GET /media, a page at a time). The next page loads as the end of the
// grid comes near (an IntersectionObserver on a sentinel), and a date scrubber at the side (GET
// /media/months) jumps to a month: the grid starts again from the end of that month, older items below.
// The filter bar's filters (search.js) apply here too.

import { apiFetch } from "./api.js";
import { endOfMonth, formatTakenAt, monthKey, monthShort, monthTitle } from "./capture.js";
import { el, formatTimestamp, icon, plural } from "./format.js";

export const DEFAULT_PAGE_SIZE = 100;
const PRELOAD_MARGIN = "600px 0px"; // start loading the next page this far before its end is in view

export class Timeline {
  /** onOpen(results, index): open the preview on preview-shaped entries; pageSize: items per request. */
  constructor(section, { onOpen, pageSize = DEFAULT_PAGE_SIZE }) {
    this.section = section;
    this.onOpen = onOpen;
    this.pageSize = pageSize;
    this.filters = null; // the API filters shown now (type, folder, taken_after, ...)
    this.filterKey = "";
    this.jump = null; // "2024-03": showing from the end of that month back
    this.generation = 0; // bumped by every reset: answers for an older grid are dropped
    this.controller = null;
    this.total = null; // media in the library under these filters (GET /media/months), once known
    this.clear();

    this.status = el("p", { class: "lib-status", role: "status", "aria-live": "polite" });
    this.monthsBox = el("div", { class: "lib-months" });
    this.sentinel = el("div", { class: "lib-sentinel", "aria-hidden": "true" });
    this.scrubber = el("nav", { class: "lib-scrubber", "aria-label": "Jump to a month" });
    section.replaceChildren(
      el("div", { class: "lib-head" }, el("h2", { class: "lib-title" }, "Library"), this.status),
      el("div", { class: "lib-body" }, el("div", { class: "lib-main" }, this.monthsBox, this.sentinel), this.scrubber));
    // Near the end, or already past it (a jump with the End key or the scrollbar can cross the sentinel
    // between two frames without it ever intersecting: the end of the scroll catches that).
    const passed = (box, top) => box.bottom < top;
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting || passed(entry.boundingClientRect, entry.rootBounds.top))) {
        this.loadMore();
      }
    }, { rootMargin: PRELOAD_MARGIN });
    window.addEventListener("scrollend", () => {
      if (!this.section.hidden && passed(this.sentinel.getBoundingClientRect(), 0)) this.loadMore();
    });
  }

  clear() {
    this.items = []; // preview-shaped entries, in grid order
    this.groups = new Map(); // "2024-03" -> its <ul>
    this.cursor = null;
    this.done = false;
    this.loading = false;
    this.pages = 0;
  }

  /** Show the library narrowed by ``filters`` (API parameters); kept as it is when they did not change. */
  show(filters) {
    this.section.hidden = false;
    const key = JSON.stringify(filters);
    if (key === this.filterKey && this.pages > 0) {
      this.watch();
      return;
    }
    this.filters = filters;
    this.filterKey = key;
    this.jump = null;
    this.reload();
  }

  hide() {
    this.section.hidden = true;
    this.observer.disconnect();
  }

  /** New media were indexed: show them, unless the reader is deep in the timeline. */
  refresh() {
    if (!this.section.hidden && this.pages <= 1) this.reload();
  }

  reload() {
    this.generation += 1;
    if (this.controller) this.controller.abort();
    this.clear();
    this.monthsBox.replaceChildren();
    this.loadMonths();
    this.loadMore();
  }

  jumpTo(key) {
    this.jump = key;
    this.reload();
    this.section.scrollIntoView({ block: "start" });
  }

  /** Watch the sentinel again: its callback then says at once whether it is near the viewport. */
  watch() {
    this.observer.disconnect();
    if (!this.done && !this.section.hidden) this.observer.observe(this.sentinel);
  }

  params() {
    const params = { ...this.filters, limit: this.pageSize };
    if (this.jump) {
      const end = endOfMonth(this.jump);
      if (!params.taken_before || end < params.taken_before) params.taken_before = end;
    }
    if (this.cursor) params.cursor = this.cursor;
    return params;
  }

  async loadMore() {
    if (this.loading || this.done) return;
    const generation = this.generation;
    const controller = new AbortController();
    this.controller = controller;
    this.loading = true;
    this.section.setAttribute("aria-busy", "true");
    try {
      const reply = await apiFetch("media", { params: this.params(), signal: controller.signal });
      if (generation !== this.generation) return;
      this.append(reply.items);
      this.pages += 1;
      this.cursor = reply.next_cursor;
      this.done = !reply.next_cursor;
      this.describe();
    } catch (error) {
      if (error.name === "AbortError" || generation !== this.generation) return;
      this.status.replaceChildren(el("span", { role: "alert" }, `Could not load the library: ${error.message}`), " ",
        el("button", { type: "button", class: "link-button", onclick: () => this.loadMore() }, "Try again"));
      this.done = false;
      return;
    } finally {
      if (generation === this.generation) {
        this.loading = false;
        this.section.removeAttribute("aria-busy");
      }
    }
    this.watch();
  }

  append(items) {
    for (const item of items) {
      const key = monthKey(item);
      const grid = this.groups.get(key) || this.addMonth(key);
      grid.append(this.cell(item, this.items.length));
      this.items.push(previewEntry(item));
    }
  }

  addMonth(key) {
    const grid = el("ul", { class: "lib-grid" });
    const heading = el("h3", { class: "lib-month-title" }, monthTitle(key));
    this.monthsBox.append(el("section", { class: "lib-month", dataset: { month: key }, "aria-label": monthTitle(key) },
      heading, grid));
    this.groups.set(key, grid);
    return grid;
  }

  cell(item, index) {
    const isVideo = item.kind === "video";
    const taken = item.taken_at ? formatTakenAt(item.taken_at) : "date unknown";
    const label = [item.name, isVideo ? "video" : "photo", `taken ${taken}`, item.camera].filter(Boolean).join(", ");
    const image = item.thumb_url ? el("img", { src: item.thumb_url, alt: "", loading: "lazy", decoding: "async" }) : null;
    const open = el("button", {
      type: "button", class: "result-open lib-open", title: `${item.name}\n${taken}`, "aria-label": `Open ${label}`,
      onclick: () => this.onOpen(this.items, index),
    }, image, isVideo ? el("span", { class: "badge time" }, icon("play", "icon tiny"),
      item.duration ? formatTimestamp(item.duration) : "video") : null);
    if (image) image.addEventListener("error", () => open.classList.add("broken"), { once: true });
    else open.classList.add("broken");
    return el("li", { class: `lib-item ${item.kind}`, dataset: { mediaId: item.id } }, open);
  }

  describe() {
    const parts = [];
    if (!this.items.length) {
      const filtered = Object.values(this.filters).some(Boolean);
      parts.push(this.jump ? `Nothing taken before the end of ${monthTitle(this.jump)}.`
        : filtered ? "Nothing in the library matches the filters." : "Nothing is indexed yet.");
    } else if (this.jump) {
      parts.push(`From ${monthTitle(this.jump)} back.`);
    }
    if (this.jump) {
      parts.push(" ", el("button", { type: "button", class: "link-button", onclick: () => this.backToNewest() }, "Back to the newest"));
    }
    if (!parts.length && this.total != null) parts.push(plural(this.total, "photo or video", "photos and videos"));
    this.status.replaceChildren(...parts);
  }

  backToNewest() {
    this.jump = null;
    this.reload();
  }

  async loadMonths() {
    const generation = this.generation;
    let reply;
    try {
      reply = await apiFetch("media/months", { params: this.filters });
    } catch {
      return; // the scrubber is a convenience: the grid works without it
    }
    if (generation !== this.generation) return;
    this.total = reply.months.reduce((sum, month) => sum + month.media, 0);
    this.renderScrubber(reply.months);
    if (this.pages > 0) this.describe();
  }

  renderScrubber(months) {
    const years = new Map();
    for (const { month, media } of months) {
      const year = month.slice(0, 4);
      if (!years.has(year)) years.set(year, []);
      years.get(year).push({ month, media });
    }
    const jumpButton = (month, text, className, label) => {
      const button = el("button", {
        type: "button", class: className, dataset: { month }, "aria-label": label,
        onclick: () => this.jumpTo(month),
      }, text);
      if (month === this.jump) button.setAttribute("aria-current", "true");
      return button;
    };
    const list = [...years].map(([year, inYear]) => el("li", { class: "lib-year" },
      jumpButton(inYear[0].month, year, "lib-year-button", `Jump to ${year}`),
      el("ol", { class: "lib-year-months" }, inYear.map(({ month, media }) => el("li", {},
        jumpButton(month, monthShort(month), "lib-month-button", `Jump to ${monthTitle(month)} (${plural(media, "item")})`))))));
    this.scrubber.replaceChildren(el("ol", { class: "lib-years" }, list));
    this.scrubber.hidden = months.length < 2;
  }
}

/** A timeline item in the shape the preview takes (a search result without a similarity). */
function previewEntry(item) {
  return {
    media_id: item.id, frame_id: item.frame_id, name: item.name, kind: item.kind, timestamp: null,
    similarity: null, frame_url: item.frame_url, thumb_url: item.thumb_url, media_url: item.media_url,
  };
}
