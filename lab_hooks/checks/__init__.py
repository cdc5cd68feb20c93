"""Leaf checks behind `lab-hooks validate`.

- `findings`: what a check reports (`Finding`, `Metric`) and the text/github/json output.
- `registry`: rule codes, thresholds, and the check functions, registered by each module.
- `config` (+ `profiles/`), `context`: a taxonomy repo's settings, and what a check may look at.
- `engine`: load the files, run every check, collect one report; `validate`: the CLI.
- `schema` (+ `jsonschema_lite`), `lint`, `paths`, `content`, `duplicates` (+ `similarity`,
  `seedindex`, `mtbench_index`), `semantic`: the checks.
- `gitbase`, `ratchet`: `--base`, only what a change adds is an error; `baseline`: the
  `lab-hooks baseline` file of errors let through.
"""
