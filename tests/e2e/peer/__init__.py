"""The Istio-native peer of the filter for APIRule v2: what Kyma and Istio make of the same APIRules.

An APIRule v2 never reaches Envoy itself. Kyma's controller turns it into Istio resources
(`kyma.py`: VirtualService, RequestAuthentication, AuthorizationPolicy), and istiod turns those
into Envoy configuration (`istio.py`: routes, `jwt_authn` and `rbac`). Both stages are written
from the sources of kyma-project/api-gateway (internal/processing/processors/v2alpha1,
internal/validation/v2alpha1, internal/builders) and istio/istio (pilot/pkg/security/authn,
pilot/pkg/security/authz, pilot/pkg/networking/core/route), so the end-to-end test can run the
result in a real Envoy and compare what it answers with what the filter answers.

`apirules.yaml` holds the APIRules the comparison uses, `probes.py` the requests.
"""
