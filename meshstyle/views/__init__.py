"""Which viewpoints: generated cameras (orbit, walkthrough), a scan's frame selection, render trajectories and camera files."""
