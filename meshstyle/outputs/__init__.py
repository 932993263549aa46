"""What a run writes: the run folder, GLB/OBJ export, renders, contact sheets and videos."""
