// The graph layout of netspec's HTML report and editor: the Eclipse Layout Kernel's layered
// algorithm (nested template scopes as compound nodes), exposed as the global `ELK`.
module.exports = require("elkjs/lib/elk.bundled.js");
