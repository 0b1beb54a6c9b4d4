// The pages shown before the app: first-start setup of the owner account, sign-in, and accepting an
// invitation (a link ending in #invite=<token>). Each one ends signed in, the session cookie set by
// the server; the page keeps no secret of its own.

import { apiFetch } from "./api.js";
import { el, icon } from "./format.js";
import { FormMessage, field, samePasswords, whileBusy } from "./forms.js";
import { jsonBody } from "./views.js";

const INVITE_HASH = /^#invite=([^&]+)$/;
const USERNAME = { maxLength: 64, pattern: "[A-Za-z0-9._@\\-]+", title: "Letters, digits and . _ - @" };
const NEW_PASSWORD = { type: "password", autocomplete: "new-password", minLength: 8, maxLength: 256 };

/** The token of an invitation link opened in this page, or null. */
export function inviteToken() {
  const match = location.hash.match(INVITE_HASH);
  return match ? decodeURIComponent(match[1]) : null;
}

/** Drop the #invite=… token from the address bar (and from history) once it has been used. */
function clearInvite() {
  history.replaceState(null, "", `${location.pathname}${location.search}`);
}

/** The signed-in account, or null when there is no (valid) session. */
export async function whoAmI() {
  try {
    return await apiFetch("auth/me", { anonymous: true });
  } catch (error) {
    if (error.unauthorized) return null;
    throw error;
  }
}

export class AuthScreen {
  constructor(root, { onSignedIn }) {
    this.root = root;
    this.onSignedIn = onSignedIn;
  }

  hide() {
    this.root.hidden = true;
    this.root.replaceChildren();
  }

  /** A card with the brand, a title and what goes under it; focus lands on its first field. */
  render(title, ...content) {
    const heading = el("h1", { id: "auth-title", tabIndex: -1 }, title);
    this.root.replaceChildren(el("div", { class: "auth-card" },
      el("div", { class: "brand" }, icon("logo", "brand-mark"), el("span", {}, "mediasearch")),
      heading, ...content));
    this.root.setAttribute("aria-labelledby", "auth-title");
    this.root.hidden = false;
    (this.root.querySelector("input:not([readonly])") || heading).focus();
  }

  /** Sign-in, or setup while the server has no owner. notice says why we are here ("You signed out."). */
  async open({ notice = "", username = "" } = {}) {
    let needed;
    try {
      ({ needed } = await apiFetch("auth/setup", { anonymous: true }));
    } catch (error) {
      this.problem(error, () => this.open({ notice, username }));
      return;
    }
    if (needed) this.setup();
    else this.signIn({ notice, username });
  }

  /** The server did not answer (or answered nonsense): say so, with a way to try again. */
  problem(error, retry) {
    this.render(error.status === 0 ? "The server is not answering" : "Something went wrong",
      el("p", { role: "alert" }, error.message),
      el("button", { type: "button", class: "button primary", onclick: retry }, "Try again"));
  }

  /**
   * Username, password and the password again, then a submit button: the form of the setup and of an invitation.
   * send(username, password) makes the account and resolves to it; onError(error, message, username) explains a refusal.
   */
  newAccountForm({ before = [], submitLabel, send, onError }) {
    const message = new FormMessage();
    const username = field("Username", { name: "username", required: true, autocomplete: "username", ...USERNAME });
    const password = field("Password", { name: "password", required: true, ...NEW_PASSWORD, hint: "At least 8 characters." });
    const again = field("Password again", { name: "password-again", required: true, ...NEW_PASSWORD });
    const submit = el("button", { type: "submit", class: "button primary" }, submitLabel);
    const form = el("form", { class: "auth-form" }, ...before.map((f) => f.root), username.root, password.root,
      again.root, message.node, el("div", { class: "button-row end" }, submit));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      message.clear();
      if (!samePasswords(password.input, again.input, message)) return;
      try {
        this.onSignedIn(await whileBusy(submit, "Creating…", () => send(username.input.value, password.input.value)));
      } catch (error) {
        onError(error, message, username);
      }
    });
    return form;
  }

  setup() {
    const token = field("Setup token", {
      name: "token", required: true, autocomplete: "off",
      hint: "It proves this server is yours. The gateway prints it in its log when it starts " +
        "(with compose: docker compose logs gateway) and writes it to <data dir>/secrets/setup.token.",
    });
    const form = this.newAccountForm({
      before: [token],
      submitLabel: "Create owner account",
      send: (username, password) => apiFetch("auth/setup", {
        method: "POST", anonymous: true, body: jsonBody({ token: token.input.value.trim(), username, password }),
      }),
      onError: (error, message, username) => {
        if (error.status === 409) {
          this.signIn({ notice: "mediasearch is already set up. Sign in." });
          return;
        }
        message.show(error.message);
        (error.status === 401 ? token.input : username.input).focus();
      },
    });
    this.render("Set up mediasearch",
      el("p", { class: "auth-intro" }, "Create the owner account. The owner can invite more people later; " +
        "everyone signed in sees the whole library."),
      form);
  }

  signIn({ notice = "", username: known = "" } = {}) {
    const message = new FormMessage();
    const noticeNode = notice ? el("p", { class: "auth-notice", role: "status" }, notice) : null;
    const username = field("Username", { name: "username", required: true, autocomplete: "username", value: known });
    const password = field("Password", { name: "password", type: "password", required: true, autocomplete: "current-password" });
    const submit = el("button", { type: "submit", class: "button primary" }, "Sign in");
    const form = el("form", { class: "auth-form" }, username.root, password.root, message.node,
      el("div", { class: "button-row end" }, submit));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      message.clear();
      if (noticeNode) noticeNode.remove(); // old news once they try
      try {
        const me = await whileBusy(submit, "Signing in…", () => apiFetch("auth/sign-in", {
          method: "POST", anonymous: true,
          body: jsonBody({ username: username.input.value, password: password.input.value }),
        }));
        this.onSignedIn(me);
      } catch (error) {
        // A 429 names the time to wait in its detail; a 401 says the name or password is wrong.
        message.show(error.message);
        password.input.select();
        password.input.focus();
      }
    });
    this.render("Sign in", noticeNode, form,
      el("details", { class: "auth-help" },
        el("summary", {}, "Forgot your password?"),
        el("p", {}, "Whoever runs the server can set a new one there: ",
          el("code", {}, "python -m services.gateway.accounts_cli reset-password <username>"),
          " (with compose: ", el("code", {}, "docker compose exec gateway python -m services.gateway.accounts_cli reset-password <username>"),
          ").")));
    if (known) password.input.focus();
  }

  /** The form behind an invitation link. me: the account this browser is already signed in with, if any. */
  invite(token, me = null) {
    const form = this.newAccountForm({
      submitLabel: "Create account",
      send: async (username, password) => {
        const account = await apiFetch("auth/invitations/accept", {
          method: "POST", anonymous: true, body: jsonBody({ token, username, password }),
        });
        clearInvite();
        return account;
      },
      onError: (error, message, username) => {
        message.show(error.message);
        username.input.focus();
      },
    });
    const leave = me
      ? el("button", { type: "button", class: "button subtle", onclick: () => { clearInvite(); this.onSignedIn(me); } },
        `Continue as ${me.username}`)
      : el("button", { type: "button", class: "button subtle", onclick: () => { clearInvite(); this.open(); } },
        "I already have an account");
    this.render("Accept invitation",
      el("p", { class: "auth-intro" }, "You are invited to this mediasearch library. Choose a username and a password " +
        "for your account."),
      me ? el("p", { class: "auth-notice" }, `This browser is signed in as ${me.username}: accepting signs it in ` +
        "with the new account instead.") : null,
      form,
      el("div", { class: "button-row" }, leave));
  }
}
