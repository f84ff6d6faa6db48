"""The maintenance cycle as a library: its pure decisions (:mod:`maintenance.policy`), its steps
(:mod:`maintenance.steps`), the sequence (:mod:`maintenance.cycle`) and what a run reports
(:mod:`maintenance.summary`). ``flows`` runs the same cycle under Prefect."""
