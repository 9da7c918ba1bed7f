"""`zen-flow ui`: a small web app on 127.0.0.1 that shows flows and acts on them with the user's
own kubeconfig (no new server-side permissions).

- ``data``: what the pages show, read from the cluster (flow summaries, the step graph drawn
  from the spec, a step's attempts and logs, the flow's Events);
- ``live``: a watch of one flow turned into server-sent events;
- ``server``: the FastAPI app factory (token, CSRF and Host checks; the routes);
- ``static/``: the page (plain JS modules) and the vendored graph library (cytoscape.js and
  cytoscape-dagre, MIT, see static/vendor/README.md).

Actions call the CLI's own functions (app.approve_cmd.decide, app.retry_cmd.request_retry,
app.stop_cmd.stop_flow, app.target.set_suspended), so the page and the commands act alike.
"""
