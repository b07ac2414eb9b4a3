// The portal's only script: htmx for partial page updates, plus small conveniences.
// Every page and form works without it; this only makes them quicker to use.
import htmx from "htmx.org";

window.htmx = htmx;

// "Select all" boxes: <input type="checkbox" data-select-all="pk"> ticks every box named pk.
document.addEventListener("change", (event) => {
  const box = event.target;
  if (!(box instanceof HTMLInputElement) || !box.dataset.selectAll) return;
  for (const other of document.querySelectorAll(`input[type=checkbox][name="${box.dataset.selectAll}"]`)) {
    other.checked = box.checked;
  }
});

// Buttons that copy a command line (the mosquitto_pub line of a new device) to the clipboard;
// hidden in the page, shown only where they can work.
function showCopyButtons() {
  if (!navigator.clipboard) return;
  for (const button of document.querySelectorAll("[data-copy][hidden]")) button.hidden = false;
}
showCopyButtons();
document.addEventListener("htmx:afterSettle", showCopyButtons);
document.addEventListener("click", async (event) => {
  const button = event.target instanceof Element ? event.target.closest("[data-copy]") : null;
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source || !navigator.clipboard) return;
  await navigator.clipboard.writeText(source.textContent.trim());
  button.textContent = "Copied";
});

// The rule editor shows only the subject field that fits the chosen subject kind; the others
// are disabled so that a value left in them is not sent (the server would refuse it).
const SUBJECT_FIELDS = { group: "subject_group", device: "subject_device", role: "subject_role",
                         service: "subject_service" };
function fitSubjectFields(form) {
  const kind = form.querySelector("[name=subject_kind]");
  if (!kind) return;
  for (const name of Object.values(SUBJECT_FIELDS)) {
    const input = form.querySelector(`[name=${name}]`);
    if (!input) continue;
    const wanted = SUBJECT_FIELDS[kind.value] === name;
    input.disabled = !wanted;
    const wrapper = input.closest(".field");
    if (wrapper) wrapper.hidden = !wanted;
  }
}
for (const form of document.querySelectorAll("form[data-subject-fields]")) fitSubjectFields(form);
document.addEventListener("change", (event) => {
  const form = event.target instanceof Element ? event.target.closest("form[data-subject-fields]") : null;
  if (form && event.target.name === "subject_kind") fitSubjectFields(form);
});
