// Entry point: wires the page's parts together, and shows them once someone is signed in.

import { AccountDialog } from "./account.js";
import { onSignedOut } from "./api.js";
import { AuthScreen, inviteToken, whoAmI } from "./auth.js";
import { Banners, HealthMonitor } from "./health.js";
import { JobsPanel } from "./jobs.js";
import { LibrariesPanel } from "./libraries.js";
import { Preview } from "./preview.js";
import { Search } from "./search.js";
import { DEFAULT_PAGE_SIZE, Timeline } from "./timeline.js";
import { Uploader, collectDropped, entriesFromInput, looksLikeImage } from "./upload.js";
import { AlbumsView } from "./albums.js";
import { DuplicatesView } from "./duplicates.js";
import { startViews } from "./views.js";

const $ = (id) => document.getElementById(id);

const banners = new Banners($("banners"));
const notify = (text) => banners.set("notice", { tone: "warning", text });

const preview = new Preview({ onSimilar: (result) => search.moreLike(result) });
// The home page while nothing is searched; ?page_size=N asks for smaller pages (tests, slow links).
const timeline = new Timeline($("library-timeline"), {
  onOpen: (items, index) => preview.open(items, index, document.activeElement),
  pageSize: Number(new URLSearchParams(location.search).get("page_size")) || DEFAULT_PAGE_SIZE,
});
const search = new Search({
  timeline,
  onOpen: (index) => preview.open(search.results, index, document.activeElement),
  // A failed search may mean a part of the service went down: let the banners say which.
  onFailure: (error) => {
    if (!error.unauthorized) health.check();
  },
});

const health = new HealthMonitor({
  banners,
  stats: $("library-stats"),
  onHealth: (state) => {
    search.setLibraryEmpty(state.media === 0);
    search.setTextMatch(state.text_match, state.model_family);
  },
});

const jobs = new JobsPanel({
  list: $("jobs-list"),
  empty: $("jobs-empty"),
  onError: notify,
  onFinished: (job) => {
    health.check();
    search.setFolders(jobs.folders());
    if (job.indexed > 0) {
      search.refresh();
      search.loadCameras();
    }
  },
  // the words in its pictures are searchable now: a search by words may find more
  onTextRead: () => {
    if (search.hasQuery() && search.mode !== "visual") search.refresh();
  },
});

const libraries = new LibrariesPanel($("libraries-panel"), {
  onError: notify,
  onListed: (list) => search.setLibraries(list),
  onChanged: () => {
    health.check();
    search.refresh();
  },
});

const uploader = new Uploader($("upload-progress"), {
  notify,
  onJobCreated: (jobId) => {
    jobs.track(jobId).then(() => search.setFolders(jobs.folders()));
  },
});

// -- choosing files ------------------------------------------------------------------------------
$("choose-folder").addEventListener("click", () => $("folder-input").click());
$("choose-files").addEventListener("click", () => $("files-input").click());
for (const input of [$("folder-input"), $("files-input")]) {
  input.addEventListener("change", () => {
    const entries = entriesFromInput(input.files);
    input.value = "";
    if (entries.length) uploader.upload(entries);
  });
}

// -- drag and drop: a folder (or several files) adds to the library, a single image searches --------
const overlay = $("drop-overlay");
const dropZone = $("drop-zone");
let dragDepth = 0;
// Signed out, a drop does nothing: the sign-in form is all there is.
const carriesFiles = (event) => Boolean(account) && Array.from(event.dataTransfer?.types || []).includes("Files");

window.addEventListener("dragenter", (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault();
  dragDepth += 1;
  overlay.hidden = false;
});
window.addEventListener("dragover", (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = "copy";
  dropZone.classList.toggle("over", dropZone.contains(event.target));
});
window.addEventListener("dragleave", () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) hideOverlay();
});
window.addEventListener("drop", async (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault();
  const intoUploadZone = dropZone.contains(event.target);
  hideOverlay();
  const { hasDirectory, files } = collectDropped(event.dataTransfer);
  const entries = await files;
  if (!entries.length) return;
  if (!intoUploadZone && !hasDirectory && entries.length === 1 && looksLikeImage(entries[0].file)) {
    search.searchByImage(entries[0].file);
  } else {
    uploader.upload(entries);
  }
});

function hideOverlay() {
  dragDepth = 0;
  overlay.hidden = true;
  dropZone.classList.remove("over");
}

// -- start, and signing in and out ---------------------------------------------------------------
async function loadJobs() {
  try {
    await jobs.load();
    search.setFolders(jobs.folders());
  } catch (error) {
    if (!error.unauthorized && error.status !== 0) notify(`Could not load the jobs: ${error.message}`);
  }
}

let account = null; // the signed-in account ({id, username, role}), null while signed out
let started = false;

const auth = new AuthScreen($("auth-screen"), { onSignedIn: enter });
const accountDialog = new AccountDialog($("account"), { onSignedOut: () => leave("You signed out.") });
$("account-button").addEventListener("click", () => accountDialog.open(account));

/** Show the app to a signed-in account: the first time builds it, later ones (after a sign-in again) refresh it. */
function enter(me) {
  account = me;
  auth.hide();
  $("account-name").textContent = me.username;
  $("app").hidden = false;
  health.check();
  loadJobs();
  libraries.load();
  search.loadCameras();
  if (started) {
    search.refresh();
    return;
  }
  started = true;
  // Before the first search: it rewrites the URL, and the view to open is in its #hash.
  startViews([
    { id: "albums", label: "Albums", create: (section) => new AlbumsView(section) },
    { id: "duplicates", label: "Duplicates", create: (section) => new DuplicatesView(section, { onDeleted: () => health.check() }) },
  ]);
  search.run();
}

/** Back to the sign-in form: after signing out, or when a request finds the session gone. */
function leave(notice) {
  if (!account) return; // several requests can find out at once
  const { username } = account;
  account = null;
  health.stop();
  hideOverlay();
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  $("app").hidden = true;
  auth.open({ notice, username });
}

onSignedOut(() => leave("Your session has ended (it expired, or you signed out elsewhere). Sign in again."));

async function start() {
  let me;
  try {
    me = await whoAmI();
  } catch (error) {
    auth.problem(error, start);
    return;
  }
  const invite = inviteToken();
  if (invite) auth.invite(invite, me);
  else if (me) enter(me);
  else auth.open();
}

start();
