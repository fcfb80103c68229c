"""The compose file's structure (no engine can pull its Prometheus and Grafana images here): it
parses, names the three services, and every file it mounts exists."""
import pathlib
import sys

import yaml

here = pathlib.Path(__file__).resolve().parent
compose = yaml.safe_load((here / "compose.yaml").read_text())
services = compose["services"]
assert set(services) == {"coincast", "prometheus", "grafana"}, services
assert "coincast-data:/data" in services["coincast"]["volumes"]
for name, service in services.items():
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            path = (here / source).resolve()
            assert path.exists(), f"{name} mounts {source}, which does not exist ({path})"
prometheus = yaml.safe_load((here / "prometheus.yml").read_text())
targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
assert targets == ["coincast:8000"], targets
print(f"compose: {len(services)} services, every mounted file exists")
sys.exit(0)
