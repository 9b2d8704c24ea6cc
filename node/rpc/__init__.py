"""JSON-RPC 2.0 over HTTP and WebSocket (docs/RPC.md). Import the server from
node.rpc.server and its limits from node.rpc.config; this package file stays empty so that
node.metrics can import node.rpc.names without an import cycle."""
