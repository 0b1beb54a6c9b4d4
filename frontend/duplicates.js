// Duplicates: groups of copies side by side (the same file uploaded twice, resized or re-encoded
// copies, pictures that look the same), with the copy to keep chosen and the extras deleted in one go.

import { apiFetch } from "./api.js";
import { el, formatBytes, formatSimilarity, plural } from "./format.js";
import { jsonBody } from "./views.js";

const CONFIRM_MS = 5000;
const MATCH_LABELS = {
  original: "Best copy",
  exact: "Same file",
  near: "Near copy",
  visual: "Looks alike",
};
const KIND_LABELS = { exact: "same file uploaded again", near: "resized or re-encoded copies", visual: "look alike" };

export class DuplicatesView {
  constructor(root, { onDeleted } = {}) {
    this.root = root;
    this.onDeleted = onDeleted || (() => {});
    this.status = el("p", { class: "library-status", role: "status", "aria-live": "polite" });
    this.groups = el("ul", { class: "dup-groups", "aria-label": "Duplicate groups" });
    this.stored = el("ul", { class: "dup-groups" });
    this.storedOnce = el("details", { class: "dup-stored-once", hidden: true },
      el("summary", {}, "Files uploaded more than once (stored once, nothing to delete)"), this.stored);
    root.append(
      el("div", { class: "library-head" }, el("h1", {}, "Duplicates")),
      el("p", { class: "hint" }, "Copies of the same picture side by side. Keep the best one and delete the rest."),
      this.status, this.groups, this.storedOnce);
  }

  show() {
    this.load();
  }

  async load() {
    try {
      const { groups, visual_pending: pending } = await apiFetch("duplicates");
      // A group whose members are all one stored file has nothing to delete: shown apart.
      const removable = groups.filter((group) => new Set(group.members.map((m) => m.media_id)).size > 1);
      const aliasesOnly = groups.filter((group) => !removable.includes(group));
      this.groups.replaceChildren(...removable.map((group) => this.groupView(group)));
      this.stored.replaceChildren(...aliasesOnly.map((group) => this.groupView(group)));
      this.storedOnce.hidden = aliasesOnly.length === 0;
      this.status.textContent = removable.length
        ? `${plural(removable.length, "group")} of duplicates`
        : "No duplicates to clean up.";
      if (pending) {
        this.status.textContent += ` Still comparing ${plural(pending, "new item")} with the library: look again in a while.`;
      }
    } catch (error) {
      this.status.textContent = `Could not look for duplicates: ${error.message}`;
    }
  }

  groupView(group) {
    let keep = group.keep;
    const name = `keep-${group.id}`;
    const removable = () => [...new Set(group.members.map((m) => m.media_id))].filter((id) => id !== keep);
    const button = el("button", { type: "button", class: "button danger-button" });
    const message = el("span", { class: "hint", role: "status" });
    const label = () => `Delete ${plural(removable().length, "extra")}`;
    button.textContent = label();
    button.hidden = removable().length === 0;
    let confirmTimer = null;
    button.addEventListener("click", async () => {
      if (!button.classList.contains("confirm")) {
        button.classList.add("confirm");
        button.textContent = `Really delete ${plural(removable().length, "file")}?`;
        confirmTimer = setTimeout(() => {
          button.classList.remove("confirm");
          button.textContent = label();
        }, CONFIRM_MS);
        return;
      }
      clearTimeout(confirmTimer);
      button.disabled = true;
      try {
        const reply = await apiFetch("media/delete", { method: "POST", body: jsonBody({ media_ids: removable() }) });
        message.textContent = `Deleted ${plural(reply.deleted.length, "file")}.`;
        this.onDeleted(reply);
        await this.load();
      } catch (error) {
        message.textContent = error.message;
        button.disabled = false;
      }
    });

    const members = group.members.map((member) => {
      const choice = member.match === "exact" || button.hidden ? null : el("label", { class: "keep-choice" },
        el("input", { type: "radio", name, value: String(member.media_id), checked: member.media_id === keep,
          onchange: () => { keep = member.media_id; button.textContent = label(); } }),
        " Keep");
      const size = member.width && member.height ? `${member.width} × ${member.height}` : "";
      const dataset = { mediaId: member.media_id, match: member.match };
      return el("li", { class: `dup-member match-${member.match}`, dataset },
        el("a", { href: member.media_url, target: "_blank", rel: "noopener", class: "dup-thumb" },
          member.thumb_url ? el("img", { src: member.thumb_url, alt: member.name, loading: "lazy" }) : member.name),
        el("span", { class: "match-badge" }, MATCH_LABELS[member.match],
          member.match === "original" ? "" : ` · ${formatSimilarity(member.score)}`),
        el("span", { class: "member-name", title: member.name }, member.name.split("/").pop()),
        el("span", { class: "hint" }, [size, formatBytes(member.size)].filter(Boolean).join(" · ")),
        choice);
    });
    return el("li", { class: "dup-group", dataset: { groupId: group.id, kind: group.kind } },
      el("p", { class: "dup-kinds" }, group.kinds.map((kind) => KIND_LABELS[kind]).join(" · ")),
      el("ul", { class: "dup-members" }, ...members),
      el("div", { class: "dup-actions" }, button, message));
  }
}
