// kubernetes.ts: a workflow whose workers run in Kubernetes pods, one pod per block.
//
// Run the workflow itself in a pod of the cluster, from the same image as its blocks: the block
// pods then find node, tsflow and this file at the paths the workflow uses, and reach the
// interchange at the workflow pod's address. Build the image from your project (with `npm ci`
// run in it), then for example:
//
//   kubectl -n science run flow --image=registry.example.org/me/flow:1.0 \
//     --overrides='{"spec":{"serviceAccountName":"tsflow-runner"}}' --restart=Never -- \
//     node out/examples/kubernetes.js
//
// The service account needs a Role allowing pods (create, get, list, delete, deletecollection)
// and secrets (create) in the namespace: see docs/providers/kubernetes.md. The environment
// variables below let the same file run elsewhere (the tests run it against a stand-in cluster).
import { HighThroughputExecutor, KubernetesProvider, app, load, main, type Config } from 'tsflow'

// Apps live at the top level of a module: the workers in the pods import it to find them.
const square = app((x: number) => x * x)

/** The config; also what `npx tsflow-perf --config examples/kubernetes.ts` measures. */
export function config(): Config {
  return {
    executors: [
      new HighThroughputExecutor({
        // The workflow pod's own address (its interface), which the block pods connect to.
        address: process.env.TSFLOW_ADDRESS ?? 'eth0',
        // The default for a non-loopback address, written out: the managers' links to the
        // interchange are CurveZMQ-encrypted, with keys the provider ships in a Secret per pod.
        encrypted: true,
        maxWorkersPerNode: 4,
        provider: new KubernetesProvider({
          image: process.env.TSFLOW_IMAGE ?? 'registry.example.org/me/flow:1.0',
          namespace: 'science',
          kubeconfig: process.env.TSFLOW_KUBECONFIG ?? 'in-cluster',
          serviceAccount: 'tsflow-runner',
          imagePullSecrets: ['regcred'],
          labels: { team: 'astro' },
          coresPerNode: 4, // requests and limits cpu: 4
          memPerNode: 8, // requests and limits memory: 8192Mi
          walltime: '04:00:00', // the pod's activeDeadlineSeconds
          initBlocks: 1,
          maxBlocks: Number(process.env.TSFLOW_MAX_BLOCKS ?? 8),
          initCommand: 'echo "block $TSFLOW_BLOCK_ID starting in pod $HOSTNAME"',
          env: { NODE_OPTIONS: '--max-old-space-size=6144' },
        }),
      }),
    ],
  }
}

main(import.meta, async () => {
  await using kernel = await load(config())
  const squares = await Promise.all(Array.from({ length: 100 }, (_, i) => square(i)))
  console.log('sum of squares', squares.reduce((a, b) => a + b, 0), 'run directory', kernel.runDir)
})
