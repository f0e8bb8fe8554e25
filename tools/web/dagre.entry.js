// The graph layout of netspec's HTML report and editor: dagre (layered layout, compound nodes
// for template scopes), exposed as the global `dagre`.
module.exports = require("@dagrejs/dagre");
