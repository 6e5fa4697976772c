"""Local Sphinx extension for the book: keep the built HTML free of console errors offline.

* Jupyter Book 1 registers sphinx-thebe's inline configuration script twice, which makes the
  browser report "Identifier 'THEBE_JS_URL' has already been declared"; drop repeated scripts.
* pydata-sphinx-theme warns "Got invalid theme mode" when no default mode is set; set one.
"""


def _drop_repeated_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        filename = getattr(script, "filename", script) or ""  # None and "" both mean an inline body
        key = (str(filename), tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def _default_mode(app, config):
    config.html_context = {**config.html_context, "default_mode": "light"}


def setup(app):
    app.connect("config-inited", _default_mode)
    app.connect("html-page-context", _drop_repeated_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
