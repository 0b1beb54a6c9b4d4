// The Libraries panel: folders on the server indexed where they are (nothing is copied), watched for
// changes and rescanned. Add one by its path, see each one's status and counts live (polled every few
// seconds while one is scanning), scan it now, remove it (asked twice; its files stay), read its errors.

import { apiFetch } from "./api.js";
import { el, formatAge, plural } from "./format.js";
import { FormMessage, confirmButton, field, whileBusy } from "./forms.js";
import { jsonBody } from "./views.js";

const POLL_MS = 3000;
const STATUS_LABELS = { scanning: "Scanning", ready: "Ready", unavailable: "Unavailable" };

export class LibrariesPanel {
  /**
   * onChanged: a library's media changed (added, scanned, removed): the counts and results may be stale.
   * onListed: the libraries as last read (for the search's library filter).
   */
  constructor(root, { onChanged = () => {}, onListed = () => {}, onError = () => {} } = {}) {
    this.root = root;
    this.onChanged = onChanged;
    this.onListed = onListed;
    this.onError = onError;
    this.timer = null;
    this.views = new Map(); // id -> view
    this.path = field("Folder on the server", {
      name: "path", required: true, placeholder: "/library/Photos", autocomplete: "off",
      hint: "Under the server's ingest roots (MEDIASEARCH_INGEST_ROOTS). Indexed where it is, never copied.",
    });
    this.name = field("Name (optional)", { name: "name", maxLength: 200, placeholder: "the folder's name" });
    this.message = new FormMessage();
    this.add = el("button", { type: "submit", class: "button primary small" }, "Add library");
    const form = el("form", { class: "library-form", onsubmit: (event) => this.create(event) },
      this.path.root, this.name.root, el("div", { class: "button-row end" }, this.add), this.message.node);
    this.empty = el("p", { class: "hint" }, "No libraries yet.");
    this.list = el("ul", { class: "jobs-list libraries-list", "aria-label": "Libraries" });
    root.append(form, this.empty, this.list);
  }

  async load() {
    clearTimeout(this.timer);
    let libraries;
    try {
      ({ libraries } = await apiFetch("libraries"));
    } catch (error) {
      if (!error.unauthorized) this.onError(`Could not read the libraries: ${error.message}`);
      return;
    }
    this.render(libraries);
    this.onListed(libraries);
    // Live while a scan runs or its files are ingested; quiet otherwise.
    if (libraries.some((library) => library.status === "scanning")) this.timer = setTimeout(() => this.load(), POLL_MS);
  }

  render(libraries) {
    const seen = new Set();
    for (const library of libraries) {
      seen.add(library.id);
      let view = this.views.get(library.id);
      if (!view) {
        view = this.createView(library);
        this.views.set(library.id, view);
        this.list.append(view.root);
      }
      if (view.last && view.last.media !== library.media) this.onChanged();
      view.render(library);
    }
    for (const [id, view] of this.views) {
      if (!seen.has(id)) {
        view.root.remove();
        this.views.delete(id);
      }
    }
    this.empty.hidden = libraries.length > 0;
  }

  async create(event) {
    event.preventDefault();
    this.message.clear();
    const body = { path: this.path.input.value.trim() };
    if (this.name.input.value.trim()) body.name = this.name.input.value.trim();
    try {
      const library = await whileBusy(this.add, "Adding…", () =>
        apiFetch("libraries", { method: "POST", body: jsonBody(body) }));
      this.message.show(`Added ${library.name}: its first scan has started.`, "ok");
      this.path.input.value = "";
      this.name.input.value = "";
      await this.load();
    } catch (error) {
      this.message.show(error.message);
    }
  }

  async scan(id) {
    try {
      await apiFetch(`libraries/${id}/scan`, { method: "POST" });
      await this.load();
    } catch (error) {
      this.onError(`Could not start a scan: ${error.message}`);
    }
  }

  async remove(id) {
    try {
      const reply = await apiFetch(`libraries/${id}`, { method: "DELETE" });
      this.onChanged(reply);
      await this.load();
    } catch (error) {
      this.onError(`Could not remove the library: ${error.message}`);
    }
  }

  createView({ id, name }) {
    const title = el("span", { class: "job-title" });
    const badge = el("span", { class: "status-badge" });
    const path = el("code", { class: "library-path" });
    const counts = el("div", { class: "job-counts" });
    const reason = el("p", { class: "job-error", role: "status", hidden: true });
    const watch = el("p", { class: "hint library-watch" });
    const errorsSummary = el("summary");
    const errorsList = el("ul", { class: "job-errors-list" });
    const errors = el("details", { class: "job-errors", hidden: true }, errorsSummary, errorsList);
    const scan = el("button", { type: "button", class: "button small", onclick: () => this.scan(id) }, "Scan now");
    const remove = confirmButton({
      label: "Remove", confirmLabel: "Really remove?", name: `Remove the library ${name}`,
      confirmName: `Really remove ${name} and its media from search? Its files stay.`,
      run: () => this.remove(id),
    });
    const root = el("li", { class: "job library", dataset: { libraryId: id } },
      el("div", { class: "job-head" }, title, badge), path, counts, reason, watch, errors);
    const view = {
      root,
      last: null,
      render: (library) => {
        title.textContent = library.name;
        title.title = library.name;
        badge.textContent = STATUS_LABELS[library.status] || library.status;
        badge.className = `status-badge ${library.status === "ready" ? "done" : library.status === "scanning" ? "running" : "failed"}`;
        path.textContent = library.path;
        const scanned = library.last_scan_at ? `scanned ${formatAge(library.last_scan_at)}` : "not scanned yet";
        counts.replaceChildren(
          el("span", { class: "count indexed" }, plural(library.media, "item")),
          el("span", { class: `count failed${library.failed ? " nonzero" : ""}` }, `${library.failed} failed`),
          el("span", {}, scanned), scan, remove);
        reason.hidden = !library.status_reason;
        reason.textContent = library.status_reason || "";
        watch.textContent = library.watching ? "Watched: changes are picked up by themselves."
          : library.watch_note ? `Not watched: ${library.watch_note}.` : "";
        const list = library.errors || []; // the first ones only; `failed` counts them all
        errors.hidden = list.length === 0;
        errorsSummary.textContent = `${plural(library.failed, "file")} could not be indexed`
          + (library.failed > list.length ? ` (the first ${list.length} are listed)` : "");
        errorsList.replaceChildren(...list.map((item) =>
          el("li", {}, el("code", { class: "error-file", title: item.file }, item.file),
            el("span", { class: "error-reason" }, item.reason))));
        view.last = library;
      },
    };
    return view;
  }
}
