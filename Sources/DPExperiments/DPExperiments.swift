// DPExperiments: placeholder, filled by its issue.
