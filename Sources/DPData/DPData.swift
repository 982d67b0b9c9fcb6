// DPData: placeholder, filled by its issue.
