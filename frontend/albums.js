// Albums: the automatic albums (similar photos and videos grouped by the server, named from a
// built-in vocabulary or by you) and the collections (each uploaded folder is one), with their media.

import { apiFetch } from "./api.js";
import { el, plural } from "./format.js";
import { jsonBody } from "./views.js";

const POLL_MS = 2000;

export class AlbumsView {
  constructor(root) {
    this.root = root;
    this.pollTimer = null;
    this.status = el("p", { class: "library-status", role: "status", "aria-live": "polite" });
    this.albums = el("ul", { class: "album-grid", "aria-label": "Albums" });
    this.collections = el("ul", { class: "album-grid", "aria-label": "Collections" });
    this.detail = el("div", { class: "album-detail", hidden: true });
    this.overview = el("div", {},
      el("div", { class: "library-head" },
        el("h1", {}, "Albums"),
        el("button", { type: "button", class: "button small", onclick: () => this.reorganise() }, "Reorganise")),
      el("p", { class: "hint" }, "Photos and videos that look alike are gathered here as they are added. " +
        "Names come from what the pictures look like; rename an album to keep your own name."),
      this.status, this.albums,
      el("h2", { class: "library-subhead" }, "Collections"),
      el("p", { class: "hint" }, "Every uploaded folder becomes a collection."),
      this.collections);
    root.append(this.overview, this.detail);
  }

  show() {
    this.closeDetail();
    this.load();
  }

  async load() {
    clearTimeout(this.pollTimer);
    try {
      const [{ clusters, pending }, { collections }] = await Promise.all([
        apiFetch("clusters"), apiFetch("collections"),
      ]);
      this.albums.replaceChildren(...clusters.map((album) => this.card(album, "clusters")));
      this.collections.replaceChildren(
        ...collections.map((set) => this.card({ ...set, title: set.name }, "collections")));
      this.status.textContent = clusters.length
        ? `${plural(clusters.length, "album")}${pending ? " · organising new photos…" : ""}`
        : pending ? "Organising your photos…" : "No albums yet. Add photos and videos to see them grouped here.";
      // New uploads are filed by the server in the background: look again while it works.
      if (pending && !this.root.hidden) this.pollTimer = setTimeout(() => this.load(), POLL_MS);
    } catch (error) {
      this.status.textContent = `Could not load the albums: ${error.message}`;
    }
  }

  async reorganise() {
    try {
      await apiFetch("clusters/recluster", { method: "POST" });
      this.load();
    } catch (error) {
      this.status.textContent = `Could not reorganise: ${error.message}`;
    }
  }

  card(item, kind) {
    const covers = item.cover_urls.slice(0, 4).map((url) => el("img", { src: url, alt: "", loading: "lazy" }));
    return el("li", { class: "album-card", dataset: { id: item.id, kind } },
      el("button", { type: "button", class: "album-open", onclick: () => this.openDetail(kind, item.id) },
        el("span", { class: `album-cover covers-${covers.length}` }, ...covers),
        el("span", { class: "album-title", title: item.title }, item.title),
        el("span", { class: "album-count" }, plural(item.size, "item"))));
  }

  async openDetail(kind, id) {
    clearTimeout(this.pollTimer);
    try {
      this.renderDetail(kind, await apiFetch(`${kind}/${id}`));
    } catch (error) {
      this.status.textContent = error.message;
    }
  }

  renderDetail(kind, item) {
    const title = kind === "clusters" ? item.title : item.name;
    const input = el("input", { type: "text", value: kind === "clusters" ? item.name || "" : item.name,
      maxLength: 200, placeholder: item.label || "", "aria-label": "Name", class: "rename-input" });
    const message = el("span", { class: "hint", role: "status" });
    const heading = el("h1", { class: "album-heading" }, title);
    const form = el("form", { class: "rename-form" }, input,
      el("button", { type: "submit", class: "button small primary" }, "Rename"), message);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const name = input.value.trim() || null;
        const saved = await apiFetch(`${kind}/${item.id}`, { method: "PATCH", body: jsonBody({ name }) });
        heading.textContent = saved.title || saved.name;
        message.textContent = "Saved.";
      } catch (error) {
        message.textContent = error.message;
      }
    });
    const subtitle = kind === "clusters" && item.name && item.label ? `Looks like: ${item.label}` : "";
    const parts = [
      el("button", { type: "button", class: "link-button back", onclick: () => this.show() }, "← All albums"),
      heading, subtitle ? el("p", { class: "hint" }, subtitle) : null, form,
      el("p", { class: "hint" }, plural(item.size, "item")),
      el("ul", { class: "member-grid", "aria-label": `Media in ${title}` }, ...item.members.map((member) =>
        el("li", { class: "member" },
          el("a", { href: member.media_url, target: "_blank", rel: "noopener", title: member.name },
            member.thumb_url ? el("img", { src: member.thumb_url, alt: member.name, loading: "lazy" }) : member.name),
          el("span", { class: "member-name" }, member.name.split("/").pop())))),
    ];
    this.detail.replaceChildren(...parts.filter(Boolean));
    this.overview.hidden = true;
    this.detail.hidden = false;
  }

  closeDetail() {
    this.detail.hidden = true;
    this.overview.hidden = false;
  }
}
