import { blockClock, workerInitSection } from '../script.js'
import { BLOCK_LABEL, RUN_LABEL } from './states.js'

/** The name of the one container of a block's pod. */
export const CONTAINER_NAME = 'tsflow-block'

export interface Quantities {
  cpu?: string
  memory?: string
}

export interface PodParts {
  name: string
  namespace: string
  blockId: string
  runId: string
  image: string
  imagePullPolicy?: string
  /** the bash script the container runs (initCommand, workerInit, then the launched command) */
  script: string
  env: Readonly<Record<string, string>>
  labels: Readonly<Record<string, string>>
  requests: Quantities
  limits: Quantities
  serviceAccount?: string
  imagePullSecrets: readonly string[]
  /** seconds the pod may run (walltime): Kubernetes fails it with DeadlineExceeded after that */
  activeDeadlineSeconds?: number
  terminationGracePeriodSeconds: number
  /** files from the workflow host, shipped in a Secret of the pod's name (see secretManifest) */
  files?: readonly ShippedFile[]
}

/** One file of SubmitOptions.files: where it goes and its key in the block's Secret. */
export interface ShippedFile {
  path: string
  key: string
  content: string
}

/** Numbers the files (Secret keys must be unique; base names may not be) and groups them by directory. */
export function shippedFiles(files: Readonly<Record<string, string>> | undefined): ShippedFile[] {
  return Object.entries(files ?? {}).map(([path, content], index) => ({ path, key: `f${index}`, content }))
}

function byDirectory(files: readonly ShippedFile[]): Map<string, ShippedFile[]> {
  const dirs = new Map<string, ShippedFile[]>()
  for (const file of files) {
    const dir = file.path.slice(0, file.path.lastIndexOf('/')) || '/'
    dirs.set(dir, [...(dirs.get(dir) ?? []), file])
  }
  return dirs
}

/**
 * The Secret holding a block's files, owned by its pod so that Kubernetes deletes it with the
 * pod (also when the workflow dies without cleaning up).
 */
export function secretManifest(parts: { name: string; namespace: string; runId: string; blockId: string; podUid: string; files: readonly ShippedFile[] }): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: {
      name: parts.name,
      namespace: parts.namespace,
      labels: { [BLOCK_LABEL]: labelValue(parts.blockId), [RUN_LABEL]: parts.runId, 'app.kubernetes.io/managed-by': 'tsflow' },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: parts.name, uid: parts.podUid }],
    },
    data: Object.fromEntries(parts.files.map((file) => [file.key, Buffer.from(file.content).toString('base64')])),
  }
}

/**
 * The manifest of a block's pod: plain JSON in the API's own field names, so the same object is
 * what the API receives, what is written next to the block's script for `kubectl create -f`,
 * and what tests read.
 */
export function podManifest(parts: PodParts): Record<string, unknown> {
  const resources: Record<string, Quantities> = {}
  // Each directory of shipped files becomes a read-only Secret volume mounted at that directory,
  // files mode 0400: what a manager's CURVE key check accepts.
  const dirs = [...byDirectory(parts.files ?? [])]
  const volumes = dirs.map(([, files], index) => ({
    name: `tsflow-files-${index}`,
    secret: { secretName: parts.name, defaultMode: 0o400, items: files.map((file) => ({ key: file.key, path: file.path.slice(file.path.lastIndexOf('/') + 1) })) },
  }))
  const volumeMounts = dirs.map(([dir], index) => ({ name: `tsflow-files-${index}`, mountPath: dir, readOnly: true }))
  if (Object.keys(parts.requests).length > 0) resources.requests = parts.requests
  if (Object.keys(parts.limits).length > 0) resources.limits = parts.limits
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: parts.name,
      namespace: parts.namespace,
      labels: { ...parts.labels, [BLOCK_LABEL]: labelValue(parts.blockId), [RUN_LABEL]: parts.runId, 'app.kubernetes.io/managed-by': 'tsflow' },
    },
    spec: {
      // A block is one attempt: the executor decides about new blocks, Kubernetes must not restart it.
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: parts.terminationGracePeriodSeconds,
      ...(parts.activeDeadlineSeconds !== undefined ? { activeDeadlineSeconds: parts.activeDeadlineSeconds } : {}),
      ...(parts.serviceAccount ? { serviceAccountName: parts.serviceAccount } : {}),
      ...(parts.imagePullSecrets.length > 0 ? { imagePullSecrets: parts.imagePullSecrets.map((name) => ({ name })) } : {}),
      containers: [
        {
          name: CONTAINER_NAME,
          image: parts.image,
          ...(parts.imagePullPolicy ? { imagePullPolicy: parts.imagePullPolicy } : {}),
          command: ['bash', '-c', parts.script],
          env: Object.entries(parts.env).map(([name, value]) => ({ name, value })),
          ...(Object.keys(resources).length > 0 ? { resources } : {}),
          ...(volumeMounts.length > 0 ? { volumeMounts } : {}),
          // A failed container's last output lines become its termination message, so the
          // block's stderr reaches the status without a separate log request.
          terminationMessagePolicy: 'FallbackToLogsOnError',
        },
      ],
      ...(volumes.length > 0 ? { volumes } : {}),
    },
  }
}

/**
 * The container's script. initCommand and workerInit run under `set -eE` (the section every
 * provider's script shares, providers/script.ts): a failing line ends the block at once, names
 * the line on stderr, and the command never starts in a half-prepared container.
 *
 * The command runs as a child of the script, which forwards SIGTERM to it: bash as a container's
 * first process ignores SIGTERM otherwise, and the manager would only see the SIGKILL at the end
 * of the grace period instead of shutting down cleanly.
 */
export function podScript(parts: { blockId: string; init: string; launched: string; launcherType: string }): string {
  const lines = [
    `# tsflow block ${parts.blockId} (kubernetes provider)`,
    // When the block started: with the walltime (in the pod's env), managers know their end time.
    ...blockClock(undefined),
    ...workerInitSection(parts.blockId, parts.init),
    '',
    `# the block's command, through the ${parts.launcherType} launcher`,
    '(',
    parts.launched,
    ') &',
    'tsflow_child=$!',
    `trap 'kill -TERM "$tsflow_child" 2>/dev/null' TERM INT`,
    // wait returns early (status > 128) when a trapped signal arrives: wait again for the real end.
    'while true; do wait "$tsflow_child"; tsflow_status=$?; kill -0 "$tsflow_child" 2>/dev/null || break; done',
    'exit "$tsflow_status"',
    '',
  ]
  return lines.join('\n')
}

const DNS_LABEL_MAX = 63

/**
 * A pod name (a DNS-1123 subdomain; kept to a 63-character label so it also works as a
 * hostname) from the prefix, run id and block id: lower case, [a-z0-9-], alphanumeric at both ends.
 */
export function podName(prefix: string, runId: string, blockId: string): string {
  const clean = (text: string) => text.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '')
  const block = clean(blockId) || 'block'
  const head = `${clean(prefix) || 'tsflow'}-${runId}-`
  return `${head}${block}`.slice(0, DNS_LABEL_MAX).replace(/-+$/, '')
}

const LABEL_VALUE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)$/

/** A block id as a label value (block ids are [A-Za-z0-9_.-]{1,64}; label values are stricter). */
export function labelValue(blockId: string): string {
  if (LABEL_VALUE.test(blockId)) return blockId
  const trimmed = blockId.replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '').slice(0, DNS_LABEL_MAX).replace(/[^A-Za-z0-9]+$/, '')
  return trimmed || 'block'
}
