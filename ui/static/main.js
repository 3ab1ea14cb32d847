// Entry point: every page registers its route on import, then the router
// starts. A new page is one module here and one file under pages/.
import { start } from "./app.js";
import "./pages/login.js";
import "./pages/fleet.js";
import "./pages/instances.js";
import "./pages/commands.js";
import "./pages/send.js";
import "./pages/sessions.js";

start();
