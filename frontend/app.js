// Entry point: wires the page's parts together.

import { getApiKey, setApiKey, startSession } from "./api.js";
import { Banners, HealthMonitor } from "./health.js";
import { JobsPanel } from "./jobs.js";
import { Preview } from "./preview.js";
import { Search } from "./search.js";
import { Uploader, collectDropped, entriesFromInput, looksLikeImage } from "./upload.js";
import { AlbumsView } from "./albums.js";
import { DuplicatesView } from "./duplicates.js";
import { startViews } from "./views.js";

const $ = (id) => document.getElementById(id);

const banners = new Banners($("banners"));
const notify = (text) => banners.set("notice", { tone: "warning", text });

const preview = new Preview({ onSimilar: (result) => search.moreLike(result) });
const search = new Search({
  onOpen: (index) => preview.open(search.results, index, document.activeElement),
  openSettings,
  // A failed search may mean a part of the service went down: let the banners say which.
  onFailure: () => health.check(),
});

const health = new HealthMonitor({
  banners,
  stats: $("library-stats"),
  openSettings,
  onHealth: (state) => search.setLibraryEmpty(state.media === 0),
});

const jobs = new JobsPanel({
  list: $("jobs-list"),
  empty: $("jobs-empty"),
  onError: notify,
  onFinished: (job) => {
    health.check();
    search.setFolders(jobs.folders());
    if (job.indexed > 0) search.refresh();
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
const carriesFiles = (event) => Array.from(event.dataTransfer?.types || []).includes("Files");

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

// -- settings ------------------------------------------------------------------------------------
const settings = $("settings");
function openSettings() {
  $("api-key-input").value = getApiKey();
  settings.showModal();
  $("api-key-input").focus();
}
$("settings-button").addEventListener("click", openSettings);
$("settings-cancel").addEventListener("click", () => settings.close());
$("settings-form").addEventListener("submit", async () => {
  setApiKey($("api-key-input").value.trim());
  await connect();
  search.refresh();
});

// -- start ---------------------------------------------------------------------------------------
async function loadJobs() {
  try {
    await jobs.load();
    search.setFolders(jobs.folders());
  } catch (error) {
    if (!error.unauthorized && error.status !== 0) notify(`Could not load the jobs: ${error.message}`);
  }
}

/** Exchange the API key for the media cookie, then load what needs it. */
async function connect() {
  try {
    await startSession();
    banners.clear("auth");
  } catch (error) {
    if (error.unauthorized) {
      banners.set("auth", {
        tone: "warning", title: "The API key was not accepted.", text: error.message,
        action: { label: "Open settings", run: openSettings },
      });
    }
  }
  health.check();
  await loadJobs();
}

// Before the first search: it rewrites the URL, and the view to open is in its #hash.
startViews([
  { id: "albums", label: "Albums", create: (section) => new AlbumsView(section) },
  { id: "duplicates", label: "Duplicates", create: (section) => new DuplicatesView(section, { onDeleted: () => health.check() }) },
]);
connect();
search.run();
