// The netc extension: .net highlighting (TextMate grammar) and a client of `netc lsp`.
"use strict";
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace.getConfiguration("netc").get("server.command", ["netc", "lsp"]);
  const serverOptions = { command, args, transport: TransportKind.stdio };
  const clientOptions = {
    documentSelector: [{ scheme: "file", language: "netc" }, { scheme: "untitled", language: "netc" }],
    synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.net") },
  };
  client = new LanguageClient("netc", "netc language server", serverOptions, clientOptions);
  client.start().catch((err) => {
    vscode.window.showErrorMessage(
      `netc: could not start \`${[command, ...args].join(" ")}\` (${err.message}). ` +
        "Install it with `pip install 'netc[lsp]'` or set netc.server.command.");
  });
  context.subscriptions.push({ dispose: () => client && client.stop() });
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
