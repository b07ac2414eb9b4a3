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
