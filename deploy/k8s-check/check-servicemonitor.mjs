// Reads a JSON list of ServiceMonitor objects on stdin and validates each
// with the validator @kubernetes-models/prometheus-operator generates from
// the operator's CRD (types, patterns, enums, required fields). Unknown
// fields are checked by tsc (servicemonitor.ts, written by k8s-check.sh):
// the CRD itself allows them (Kubernetes prunes them silently).
import fs from 'node:fs';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';

const docs = JSON.parse(fs.readFileSync(0, 'utf8'));
if (docs.length === 0) {
  console.error('no ServiceMonitor given');
  process.exitCode = 1;
}
for (const doc of docs) {
  try {
    new ServiceMonitor(doc).validate();
    console.log(`servicemonitor ${doc.metadata.name}: valid`);
  } catch (e) {
    console.error(`servicemonitor ${doc?.metadata?.name}: ${e.message}`);
    process.exitCode = 1;
  }
}
