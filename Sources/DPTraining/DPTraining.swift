// DPTraining: placeholder, filled by its issue.
