// Switches the main area between Search and the library views (Albums, Duplicates): tabs in the top
// bar, the chosen view in the URL's #hash so a reload or a shared link opens the same view.

import { el } from "./format.js";

const SEARCH = "search";

/** A JSON request body for apiFetch (a Blob carries its own Content-Type header). */
export function jsonBody(value) {
  return new Blob([JSON.stringify(value)], { type: "application/json" });
}

/**
 * views: [{ id, label, create(section) -> {show()} }]. Each gets its own <section> in the main area,
 * built on first visit; the search area stays as it is and is shown for the "search" tab.
 */
export function startViews(views) {
  const topbar = document.querySelector(".topbar");
  const searchArea = document.querySelector(".search-area");
  const tabs = el("nav", { class: "view-tabs", "aria-label": "Views" });
  const entries = new Map([[SEARCH, { label: "Search", section: searchArea, view: null }]]);
  for (const { id, label, create } of views) {
    const section = el("section", { id: `${id}-view`, class: "library-view", hidden: true, "aria-label": label });
    searchArea.before(section);
    entries.set(id, { label, section, create, view: null });
  }
  for (const [id, entry] of entries) {
    entry.tab = el("a", { href: `#${id}`, class: "view-tab", dataset: { view: id } }, entry.label);
    tabs.append(entry.tab);
  }
  topbar.querySelector(".brand").after(tabs);

  function show(id) {
    const current = entries.has(id) ? id : SEARCH;
    for (const [other, entry] of entries) {
      const active = other === current;
      entry.section.hidden = !active;
      if (active) entry.tab.setAttribute("aria-current", "page");
      else entry.tab.removeAttribute("aria-current");
    }
    const entry = entries.get(current);
    if (entry.create) {
      entry.view = entry.view || entry.create(entry.section);
      entry.view.show();
    }
  }

  const fromHash = () => show(location.hash.slice(1));
  window.addEventListener("hashchange", fromHash);
  fromHash();
  return { show: (id) => { location.hash = id; } };
}
