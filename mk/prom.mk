# mk/prom.mk - Prometheus config/rules and the Grafana dashboard (issue 12 s5).
#
#   make prom-check   promtool check config + check rules + test rules (seconds;
#                     tests/integration/test_prometheus.py runs these too, plus a
#                     real Prometheus against a gateway, in `make test`)
# Packages: scripts/deps.d/prom.list (prometheus ships promtool; python3-yaml).
# The PromQL parser (npm @prometheus-io/lezer-promql) is installed by the test
# itself through tests/promql/install.sh.
.PHONY: prom-check
prom-check:
	promtool check config deploy/prometheus/prometheus.yml
	promtool check rules deploy/prometheus/rules/*.rules.yml
	promtool test rules deploy/prometheus/tests/*.yml
