// The Account dialog: who is signed in, sign out, change password, API keys for scripts; for the
// owner also the users, invitations and the audit log. Built afresh from the server on every open.

import { apiFetch } from "./api.js";
import { el, formatAge, formatDateTime, icon } from "./format.js";
import { FormMessage, confirmButton, field, samePasswords, secretBox, whileBusy } from "./forms.js";
import { jsonBody } from "./views.js";

const AUDIT_PAGE = 50;
const INVITATION_HOURS = 72;
const ROLE_LABELS = { owner: "Owner", member: "Member" };

/** "5 min ago", with the exact time on hover. */
function when(epochSeconds) {
  return el("time", { dateTime: new Date(epochSeconds * 1000).toISOString(), title: formatDateTime(epochSeconds) },
    formatAge(epochSeconds));
}

function table(caption, headings, rows, empty) {
  if (!rows.length) return el("p", { class: "hint" }, empty);
  return el("div", { class: "table-scroll" }, el("table", { class: "account-table" },
    el("caption", { class: "visually-hidden" }, caption),
    el("thead", {}, el("tr", {}, headings.map((text) => el("th", { scope: "col" }, text)))),
    el("tbody", {}, rows)));
}

function section(id, title, ...content) {
  return el("section", { class: "account-section", "aria-labelledby": `account-${id}-title`, dataset: { section: id } },
    el("h3", { id: `account-${id}-title` }, title), ...content);
}

export class AccountDialog {
  /** onSignedOut(): after the server has ended the session. */
  constructor(dialog, { onSignedOut }) {
    this.dialog = dialog;
    this.onSignedOut = onSignedOut;
    this.opener = null;
    dialog.addEventListener("close", () => {
      dialog.replaceChildren(); // a key or link shown once must not linger in the page
      if (this.opener && this.opener.isConnected) this.opener.focus();
    });
  }

  open(me) {
    this.opener = document.activeElement;
    const close = el("button", { type: "button", class: "icon-button", "aria-label": "Close account", onclick: () => this.close() },
      icon("close", ""));
    const signOutMessage = new FormMessage();
    const signOut = el("button", { type: "button", class: "button" }, "Sign out");
    signOut.addEventListener("click", async () => {
      try {
        await whileBusy(signOut, "Signing out…", () => apiFetch("auth/sign-out", { method: "POST" }));
        this.onSignedOut();
      } catch (error) {
        signOutMessage.show(error.message);
      }
    });
    const sections = [this.passwordSection(), this.keysSection()];
    if (me.role === "owner") sections.push(this.usersSection(me), this.invitationsSection(), this.auditSection());
    this.dialog.replaceChildren(
      el("div", { class: "dialog-header" }, el("h2", { id: "account-title" }, "Account"), close),
      el("div", { class: "account-body" },
        el("div", { class: "account-who" },
          el("p", {}, "Signed in as ", el("strong", { class: "account-username" }, me.username), " · ",
            el("span", { class: "account-role" }, ROLE_LABELS[me.role] || me.role)),
          signOut),
        signOutMessage.node,
        ...sections));
    if (!this.dialog.open) this.dialog.showModal();
    close.focus();
  }

  close() {
    if (this.dialog.open) this.dialog.close();
  }

  passwordSection() {
    const message = new FormMessage();
    const options = { type: "password", required: true, maxLength: 256 };
    const current = field("Current password", { ...options, name: "current-password", autocomplete: "current-password" });
    const fresh = field("New password", { ...options, name: "new-password", autocomplete: "new-password", minLength: 8,
      hint: "At least 8 characters. Your other sessions are signed out; this one stays." });
    const again = field("New password again", { ...options, name: "new-password-again", autocomplete: "new-password", minLength: 8 });
    const submit = el("button", { type: "submit", class: "button" }, "Change password");
    const form = el("form", { class: "account-form" }, current.root, fresh.root, again.root, message.node,
      el("div", { class: "button-row end" }, submit));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      message.clear();
      if (!samePasswords(fresh.input, again.input, message)) return;
      try {
        await whileBusy(submit, "Changing…", () => apiFetch("auth/password", {
          method: "POST", body: jsonBody({ current_password: current.input.value, new_password: fresh.input.value }),
        }));
        form.reset();
        message.show("Password changed.", "ok");
      } catch (error) {
        message.show(error.message);
        (error.status === 403 ? current.input : fresh.input).focus();
      }
    });
    return section("password", "Change password", form);
  }

  keysSection() {
    const list = el("div", { class: "account-list" });
    const created = el("div", { class: "account-created" });
    const message = new FormMessage();
    const load = async () => {
      try {
        const keys = await apiFetch("auth/api-keys");
        list.replaceChildren(table("Your API keys", ["Name", "Key", "Created", "Last used", ""], keys.map((key) =>
          el("tr", { dataset: { keyId: key.id } },
            el("td", {}, key.name),
            el("td", {}, el("code", {}, `${key.prefix}…`)),
            el("td", {}, when(key.created_at)),
            el("td", {}, key.last_used_at ? when(key.last_used_at) : "never"),
            el("td", { class: "row-actions" }, confirmButton({
              label: "Revoke", confirmLabel: "Really revoke?",
              name: `Revoke key ${key.name}`, confirmName: `Really revoke key ${key.name}?`,
              run: async () => {
                try {
                  await apiFetch(`auth/api-keys/${encodeURIComponent(key.id)}`, { method: "DELETE" });
                  created.replaceChildren();
                  message.show(`Key “${key.name}” revoked.`, "ok");
                  await load();
                } catch (error) {
                  message.show(error.message);
                }
              },
            })))), "No API keys yet."));
      } catch (error) {
        list.replaceChildren(el("p", { class: "form-message error" }, `Could not load your keys: ${error.message}`));
      }
    };
    const name = field("New key name", { name: "key-name", required: true, maxLength: 100, autocomplete: "off",
      placeholder: "e.g. backup script" });
    const submit = el("button", { type: "submit", class: "button" }, "Create key");
    const form = el("form", { class: "account-form inline" }, name.root, submit);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      message.clear();
      try {
        const key = await whileBusy(submit, "Creating…", () => apiFetch("auth/api-keys", {
          method: "POST", body: jsonBody({ name: name.input.value.trim() }),
        }));
        form.reset();
        created.replaceChildren(secretBox({
          label: `New API key “${key.name}”`, value: key.key,
          warning: "Copy this key now: it will not be shown again.",
        }));
        created.querySelector("input").focus();
        await load();
      } catch (error) {
        message.show(error.message);
      }
    });
    load();
    return section("keys", "API keys",
      el("p", { class: "hint" }, "For scripts and other programs: send a key in the X-API-Key header " +
        "(or Authorization: Bearer). A key acts as you; revoke it when it is no longer needed."),
      list, form, message.node, created);
  }

  usersSection(me) {
    const list = el("div", { class: "account-list" });
    const message = new FormMessage();
    const load = async () => {
      try {
        const users = await apiFetch("auth/users");
        list.replaceChildren(table("Users", ["Username", "Role", "Since", ""], users.map((user) =>
          el("tr", { dataset: { userId: user.id } },
            el("td", {}, user.username, user.id === me.id ? " (you)" : ""),
            el("td", {}, ROLE_LABELS[user.role] || user.role),
            el("td", {}, when(user.created_at)),
            el("td", { class: "row-actions" }, user.role === "owner" ? null : confirmButton({
              label: "Remove", confirmLabel: "Really remove?",
              name: `Remove ${user.username}`, confirmName: `Really remove ${user.username}?`,
              run: async () => {
                try {
                  await apiFetch(`auth/users/${encodeURIComponent(user.id)}`, { method: "DELETE" });
                  message.show(`${user.username} removed, with their sessions and keys.`, "ok");
                  await load();
                } catch (error) {
                  message.show(error.message);
                }
              },
            })))), "No users."));
      } catch (error) {
        list.replaceChildren(el("p", { class: "form-message error" }, `Could not load the users: ${error.message}`));
      }
    };
    load();
    return section("users", "Users", el("p", { class: "hint" }, "Everyone signed in sees the whole library."),
      list, message.node);
  }

  invitationsSection() {
    const list = el("div", { class: "account-list" });
    const created = el("div", { class: "account-created" });
    const message = new FormMessage();
    const load = async () => {
      try {
        const invitations = await apiFetch("auth/invitations");
        list.replaceChildren(table("Pending invitations", ["Created", "Expires", ""], invitations.map((invitation) =>
          el("tr", { dataset: { invitationId: invitation.id } },
            el("td", {}, when(invitation.created_at)),
            el("td", {}, formatDateTime(invitation.expires_at)),
            el("td", { class: "row-actions" }, confirmButton({
              label: "Revoke", confirmLabel: "Really revoke?",
              name: `Revoke invitation ${invitation.id}`, confirmName: `Really revoke invitation ${invitation.id}?`,
              run: async () => {
                try {
                  await apiFetch(`auth/invitations/${encodeURIComponent(invitation.id)}`, { method: "DELETE" });
                  created.replaceChildren();
                  message.show("Invitation revoked.", "ok");
                  await load();
                } catch (error) {
                  message.show(error.message);
                }
              },
            })))), "No pending invitations."));
      } catch (error) {
        list.replaceChildren(el("p", { class: "form-message error" }, `Could not load the invitations: ${error.message}`));
      }
    };
    const invite = el("button", { type: "button", class: "button" }, "Create invitation link");
    invite.addEventListener("click", async () => {
      message.clear();
      try {
        const invitation = await whileBusy(invite, "Creating…", () => apiFetch("auth/invitations", {
          method: "POST", body: jsonBody({ expires_in_hours: INVITATION_HOURS }),
        }));
        const link = `${location.origin}${location.pathname}#invite=${encodeURIComponent(invitation.token)}`;
        created.replaceChildren(secretBox({
          label: "Invitation link", value: link,
          warning: `Copy this link now and send it to the person you invite: it will not be shown again. ` +
            `It works once, until ${formatDateTime(invitation.expires_at)}.`,
        }));
        created.querySelector("input").focus();
        await load();
      } catch (error) {
        message.show(error.message);
      }
    });
    load();
    return section("invitations", "Invitations",
      el("p", { class: "hint" }, "An invitation link lets one person create their own account."),
      list, el("div", { class: "button-row end" }, invite), message.node, created);
  }

  auditSection() {
    const rows = el("tbody");
    const holder = el("div", { class: "account-list" });
    const older = el("button", { type: "button", class: "button small", hidden: true }, "Show older");
    let before = null;
    const load = async () => {
      try {
        const { events, next_before: next } = await apiFetch("auth/audit", { params: { limit: AUDIT_PAGE, before } });
        rows.append(...events.map((event) => el("tr", { dataset: { eventId: event.id } },
          el("td", {}, el("time", { dateTime: new Date(event.at * 1000).toISOString() }, formatDateTime(event.at))),
          el("td", {}, event.actor || "—"),
          el("td", {}, event.action),
          el("td", {}, event.target || ""),
          el("td", { class: "audit-detail" }, event.detail || ""),
          el("td", {}, event.client || ""))));
        if (!holder.firstChild) {
          holder.append(rows.childElementCount
            ? el("div", { class: "table-scroll" }, el("table", { class: "account-table audit" },
              el("caption", { class: "visually-hidden" }, "Audit log, newest first"),
              el("thead", {}, el("tr", {}, ["When", "Who", "What", "Target", "Detail", "From"]
                .map((text) => el("th", { scope: "col" }, text)))),
              rows))
            : el("p", { class: "hint" }, "Nothing recorded yet."));
        }
        before = next;
        older.hidden = next === null || next === undefined;
      } catch (error) {
        holder.append(el("p", { class: "form-message error" }, `Could not load the audit log: ${error.message}`));
      }
    };
    older.addEventListener("click", () => whileBusy(older, "Loading…", load));
    load();
    return section("audit", "Audit log",
      el("p", { class: "hint" }, "Sign-ins, account and key changes, and deletions, newest first."),
      holder, el("div", { class: "button-row" }, older));
  }
}
