// Form parts shared by the sign-in pages and the Account dialog: labelled fields, a button that
// says what it is doing, a delete button that asks twice, and a box for a secret shown only once.

import { el } from "./format.js";

const CONFIRM_MS = 5000;
let lastId = 0;

/** A labelled input; attrs go to the <input>, hint is a line under it that the input points to. */
export function field(label, { hint, ...attrs } = {}) {
  const id = `field-${++lastId}`;
  const hintNode = hint ? el("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  const input = el("input", { id, spellcheck: false, "aria-describedby": hintNode ? hintNode.id : null, ...attrs });
  const root = el("div", { class: "field" }, el("label", { for: id }, label), input, hintNode);
  return { root, input };
}

/** A line for a form's outcome; errors are announced at once, the rest politely. */
export class FormMessage {
  constructor() {
    this.node = el("p", { class: "form-message", role: "status", "aria-live": "polite", hidden: true });
  }

  show(text, tone = "error") {
    this.node.className = `form-message ${tone}`;
    this.node.setAttribute("aria-live", tone === "error" ? "assertive" : "polite");
    this.node.textContent = text;
    this.node.hidden = !text;
  }

  clear() {
    this.show("");
  }
}

/** Whether the password was typed the same twice; if not, says so and marks the second field. */
export function samePasswords(password, again, message) {
  const same = password.value === again.value;
  if (same) again.removeAttribute("aria-invalid");
  else {
    message.show("The two passwords are not the same.");
    again.setAttribute("aria-invalid", "true");
    again.focus();
  }
  return same;
}

/** Run work() with the button disabled and saying what happens ("Signing in…"). */
export async function whileBusy(button, busyLabel, work) {
  const label = button.textContent;
  button.disabled = true;
  button.textContent = busyLabel;
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.textContent = label;
  }
}

/** A button that asks again before run() (as the Duplicates view does): no window.confirm to block the page. */
export function confirmButton({ label, confirmLabel, name, confirmName, run }) {
  const button = el("button", { type: "button", class: "button small danger-button" });
  let timer = null;
  const reset = () => {
    clearTimeout(timer);
    button.classList.remove("confirm");
    button.textContent = label;
    button.setAttribute("aria-label", name);
  };
  button.addEventListener("click", async () => {
    if (!button.classList.contains("confirm")) {
      button.classList.add("confirm");
      button.textContent = confirmLabel;
      button.setAttribute("aria-label", confirmName);
      timer = setTimeout(reset, CONFIRM_MS);
      return;
    }
    clearTimeout(timer);
    button.disabled = true;
    try {
      await run();
    } finally {
      button.disabled = false;
      reset();
    }
  });
  reset();
  return button;
}

async function copyText(input) {
  try {
    await navigator.clipboard.writeText(input.value);
    return true;
  } catch {
    // No clipboard API (a page served over plain http from another machine) or no permission.
    input.select();
    try {
      return document.execCommand("copy");
    } catch {
      return false;
    }
  }
}

/** A secret the server shows once (a new API key, an invitation link): read-only, with a Copy button. */
export function secretBox({ label, value, warning }) {
  const { root, input } = field(label, { value, readOnly: true, class: "secret-value" });
  const status = el("span", { class: "hint", role: "status" });
  const copy = el("button", { type: "button", class: "button small" }, "Copy");
  copy.addEventListener("click", async () => {
    status.textContent = (await copyText(input)) ? "Copied." : "Select it and copy it by hand.";
  });
  input.addEventListener("focus", () => input.select());
  return el("div", { class: "secret-box" },
    el("p", { class: "secret-warning" }, el("strong", {}, warning)),
    root,
    el("div", { class: "secret-actions" }, copy, status));
}
