// The editor of `netspec serve`: CodeMirror 6 with its lint and stream-language support,
// exposed as the global `NetspecEditor`.
export { basicSetup, EditorView } from "codemirror";
export { EditorState } from "@codemirror/state";
export { forceLinting, lintGutter, linter, setDiagnostics } from "@codemirror/lint";
export { StreamLanguage } from "@codemirror/language";
