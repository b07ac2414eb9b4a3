// The portal's live side: one MQTT connection per page over /mqtt (docs/dashboard.md), the
// connection indicator in the header, and the live parts of the pages that ask for them
// (the topic explorer, presence on the device list, a device's messages and charts).
// A page without a tenant (sign-in, home) opens no connection.
import { LiveConnection } from "./live/connection.js";
import { startExplorer } from "./live/explorer.js";
import { startDevicePage, startPresence } from "./live/devices.js";

const indicator = document.getElementById("mqtt-status");
const tenant = indicator?.dataset.tenant;
if (indicator && tenant) {
  const live = new LiveConnection(tenant, indicator);
  window.roostLive = live; // for the tests and for one's own experiments in the console
  startPresence(live);
  const explorer = document.getElementById("explorer");
  if (explorer) startExplorer(live, explorer);
  const device = document.getElementById("device-live");
  if (device) startDevicePage(live, device);
}
