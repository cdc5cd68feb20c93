"""The PR loop and promotion, one module per stage (docs/architecture.md draws it).

    from lab_hooks.loop.pr import run_pr            # plan → validate → generate → train → evaluate
    from lab_hooks.loop.report import write_report  # results.json, comment.md, job summary
    from lab_hooks.loop.promote import promote      # after a merge: adopt the candidate or retrain

- run:       PrOptions, the results being built and the stage timer (`Run`), `StageFailed`
- plan:      the diff: one ChangeSet (lab_hooks.diff)
- validate:  the changed leaves through the validator, with the base side's rules
- generate:  synthetic data (lab_hooks.sdg)
- train:     the candidate, from main's checkpoint with replay (lab_hooks.train)
- evaluate:  MT-Bench and the branch eval, base vs candidate (lab_hooks.eval)
- stages:    the model-backed stages as parameters (`Stages`), the real ones by default
- report:    results.json and the comment (lab_hooks.report)
- candidate: a PR run's candidate, kept for promotion
- promote:   main's checkpoint and replay buffer advance after a merge

Each stage takes a typed input and returns a typed, frozen result. `lab_hooks.pr` and
`lab_hooks.promote` are the command lines over these modules.
"""
