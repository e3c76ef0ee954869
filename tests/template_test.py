"""Security facts of template.yaml that a change must not quietly undo.

Parsed with cfn-lint's decoder (CloudFormation's YAML, short-form intrinsics
included). Run by `make validate`, which `make test` runs: a widened role, a
weakened fence or a queue open to any sender fails CI. Each rule below states
one fact; the last test checks that the rules can fail. What IAM would decide
for real requests is tests/iam/ (the policy simulator); this file checks the
template's shape.
"""

import copy
import fnmatch
import pathlib
import unittest

from cfnlint.decode import decode

TEMPLATE = pathlib.Path(__file__).resolve().parent.parent / "template.yaml"
FENCE_ARN = "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/${Prefix}-user-boundary"
OWN_USER = "arn:${AWS::Partition}:iam::${AWS::AccountId}:user/${!aws:username}"
OWN_MFA = "arn:${AWS::Partition}:iam::${AWS::AccountId}:mfa/${!aws:username}"
# The same at an IAM path (a ticket may set one: user/team/NAME). User names are unique
# account-wide, whatever the path.
OWN_USER_AT_PATH = "arn:${AWS::Partition}:iam::${AWS::AccountId}:user/*/${!aws:username}"
OWN_MFA_AT_PATH = "arn:${AWS::Partition}:iam::${AWS::AccountId}:mfa/*/${!aws:username}"
OWN = {OWN_USER, OWN_USER_AT_PATH, OWN_MFA, OWN_MFA_AT_PATH}
OWN_SECRET = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretPrefix}${!aws:username}-??????"
STS_SESSION = {"sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"}
MANAGED = "iam-provisioner:managed"

# What Lambda does for every function (logs to its own group, traces, polls
# its queue) and, per stage, exactly the calls SHARED-SPEC lists.
PLATFORM = {"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
CONSUME = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
ALLOWED_ACTIONS = {
    "CreateUserRole": PLATFORM | CONSUME | {
        "iam:ListUsers", "iam:GetUser", "iam:ListGroupsForUser", "iam:ListAttachedUserPolicies",
        "iam:ListUserPolicies", "iam:CreateUser", "iam:TagUser", "iam:AddUserToGroup", "iam:AttachUserPolicy",
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:BatchWriteItem",
        "sqs:SendMessage", "ses:SendEmail"},
    "IssueCredentialsRole": PLATFORM | CONSUME | {
        "iam:GetUser", "iam:ListAccessKeys", "iam:GetAccountPasswordPolicy", "iam:ListAccountAliases",
        "iam:CreateLoginProfile", "iam:CreateAccessKey", "iam:DeleteAccessKey", "iam:AttachUserPolicy",
        "secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret", "secretsmanager:CreateSecret",
        "secretsmanager:TagResource", "secretsmanager:PutSecretValue",
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:UpdateItem",
        "sqs:SendMessage", "ses:SendEmail"},
    "NotifyUserRole": PLATFORM | CONSUME | {
        "secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret", "iam:ListAccountAliases",
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query", "ses:SendEmail"},
    "RotateKeysRole": PLATFORM | {
        "iam:ListUsers", "iam:GetUser", "iam:ListAccessKeys", "iam:GetAccessKeyLastUsed", "iam:UpdateAccessKey",
        "iam:DeleteAccessKey",
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:UpdateItem",
        "sqs:SendMessage", "ses:SendEmail"},
    "OffboardUserRole": PLATFORM | CONSUME | {
        "iam:GetUser", "iam:GetLoginProfile", "iam:ListAccessKeys", "iam:ListSigningCertificates",
        "iam:ListSSHPublicKeys", "iam:ListServiceSpecificCredentials", "iam:ListMFADevices", "iam:ListGroupsForUser",
        "iam:ListAttachedUserPolicies", "iam:ListUserPolicies",
        "iam:DeleteLoginProfile", "iam:UpdateAccessKey", "iam:DeleteAccessKey", "iam:DeleteSigningCertificate",
        "iam:DeleteSSHPublicKey", "iam:DeleteServiceSpecificCredential", "iam:DeactivateMFADevice",
        "iam:DetachUserPolicy", "iam:DeleteUserPolicy", "iam:DeleteUser", "iam:TagUser", "iam:RemoveUserFromGroup",
        "iam:DeleteVirtualMFADevice", "iam:TagMFADevice", "iam:ListMFADeviceTags", "iam:ListVirtualMFADevices",
        "iam:ListUsers",
        "secretsmanager:DeleteSecret", "secretsmanager:DescribeSecret",
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:BatchWriteItem",
        "ses:SendEmail"},
    "ChangeAccessRole": PLATFORM | CONSUME | {
        "iam:GetUser", "iam:ListGroupsForUser", "iam:ListAttachedUserPolicies",
        "iam:AddUserToGroup", "iam:RemoveUserFromGroup", "iam:AttachUserPolicy", "iam:DetachUserPolicy",
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:BatchWriteItem",
        "ses:SendEmail"},
    "RotationScheduleRole": {"lambda:InvokeFunction"},
    "LifecycleScheduleRole": {"lambda:InvokeFunction"},
}
# The scheduled runs: function -> (schedule, its role, the schedule's name, the parameter that
# says when, the input the function reads). Each role is assumable by the Scheduler only for its
# own schedule and may invoke its own function only.
SCHEDULES = {
    "RotateKeysFunction": ("DailyRotation", "RotationScheduleRole", "${Prefix}-rotation", "RotationSchedule",
                           '{"dry_run": false}'),
    "OffboardUserFunction": ("DailyLifecycle", "LifecycleScheduleRole", "${Prefix}-lifecycle", "LifecycleSchedule",
                             '{"run": "daily"}'),
}
SCHEDULE_ARN = "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/default/"
# A scheduled run stops starting work 60 s before its deadline and is resumed by its next run:
# it needs Lambda's 15 minutes.
SCHEDULED_TIMEOUT = 900
# What the log lines of a function are alarmed on besides untrusted messages and deployment
# faults: rotate-keys' held keys and failed users, the daily run's failed and restored users.
MARKERS = {
    "RotateKeysLogGroup": ("rotated_key_still_used", "rotation_user_failed"),
    "OffboardUserLogGroup": ("lifecycle_user_failed", "offboarded_user_restored"),
}
STAGE_ROLES = ["CreateUserRole", "IssueCredentialsRole", "NotifyUserRole", "RotateKeysRole", "OffboardUserRole",
               "ChangeAccessRole"]
ALWAYS_DENIED = {"iam:TagUser", "iam:UntagUser", "iam:PutUserPolicy", "iam:PutUserPermissionsBoundary",
                 "iam:DeleteUserPermissionsBoundary", "iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion",
                 "iam:PassRole", "iam:TagMFADevice", "iam:UntagMFADevice"}
# What a role must deny beyond ALWAYS_DENIED: offboard-user only takes away, so every way of
# giving a user a credential, a group or a policy is denied outright.
ALSO_DENIED = {
    "OffboardUserRole": {"iam:CreateUser", "iam:CreateAccessKey", "iam:CreateLoginProfile", "iam:UpdateLoginProfile",
                         "iam:AddUserToGroup", "iam:AttachUserPolicy"},
    # change-access changes groups and allow-listed policies, nothing else: no user, no
    # credential, no inline or group policy (CONTRACT.md 6: "the boundary is not changed").
    "ChangeAccessRole": {"iam:CreateUser", "iam:CreateAccessKey", "iam:CreateLoginProfile", "iam:UpdateLoginProfile",
                         "iam:PutGroupPolicy", "iam:AttachGroupPolicy", "iam:DeletePolicyVersion"},
}
# The allow-lists a role's grants are held to: what a ticket may attach (AllowedManagedPolicies,
# or issue-credentials' ChangePasswordPolicy), and, for change-access, what it may detach and the
# groups it may remove users from (removals are held to the lists as additions are).
ATTACHABLE = [{"Ref": "AllowedManagedPolicies"}, {"Ref": "ChangePasswordPolicy"}]
ALLOW_LISTED_REMOVALS = {"ChangeAccessRole"}
TICKET = "iam-provisioner:ticket"
# offboard-user's mark on a virtual MFA device: the user's IAM id under this key is the only
# proof it takes that an unassigned device was that user's (shared/src/lifecycle.rs), so it
# alone may set the key, and nobody may set it on the device they create.
MFA_OWNER_TAG = "iam-provisioner:offboarding"
OFFBOARDED_TAGS = {"iam-provisioner:offboarded", "iam-provisioner:offboarded-on"}
USERS = "arn:${AWS::Partition}:iam::${AWS::AccountId}:user/*"
GROUPS = "arn:${AWS::Partition}:iam::${AWS::AccountId}:group/*"
MFA_DEVICES = "arn:${AWS::Partition}:iam::${AWS::AccountId}:mfa/*"
USER_SECRETS = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretPrefix}*"
MIN_RECOVERY_DAYS = 7  # Secrets Manager's minimum recovery window


def tag_on_create(st):
    """IAM authorises CreateUser's Tags as iam:TagUser on the new user (tag-on-create), so the
    create-user role holds TagUser, but only for requests that tag managed=true with a ticket."""
    found = []
    if cond(st, "StringEquals").get(f"aws:RequestTag/{MANAGED}") != "true":
        found.append(f"iam:TagUser without aws:RequestTag/{MANAGED} = true")
    if cond(st, "Null").get(f"aws:RequestTag/{TICKET}") != "false":
        found.append(f"iam:TagUser without a ticket tag required (Null aws:RequestTag/{TICKET})")
    return found


def offboarded_tags(st):
    """offboard-user marks a user it disabled: the two offboarded tags, on the pipeline's own
    users, nothing else (not the managed tag, not a ticket tag, no other key)."""
    found = []
    keys = cond(st, "ForAllValues:StringEquals").get("aws:TagKeys")
    if keys is None:
        found.append("iam:TagUser of any tag key (no ForAllValues:StringEquals aws:TagKeys)")
    elif not as_list(keys) or set(as_list(keys)) - OFFBOARDED_TAGS:
        found.append(f"iam:TagUser of tag keys beyond {sorted(OFFBOARDED_TAGS)}: {as_list(keys)}")
    if cond(st, "StringEquals").get(f"iam:ResourceTag/{MANAGED}") != "true":
        found.append(f"iam:TagUser on users the pipeline did not create (no iam:ResourceTag/{MANAGED} = true)")
    return found


def offboarding_mark(st):
    """offboard-user marks a virtual MFA device with MFA_OWNER_TAG, no other key."""
    keys = cond(st, "ForAllValues:StringEquals").get("aws:TagKeys")
    if keys is None:
        return ["iam:TagMFADevice of any tag key (no ForAllValues:StringEquals aws:TagKeys)"]
    if as_list(keys) != [MFA_OWNER_TAG]:
        return [f"iam:TagMFADevice of tag keys beyond {MFA_OWNER_TAG}: {as_list(keys)}"]
    return []


# The roles that may mark MFA devices (TagMFADevice), as their rule says, and what breaks if
# it is denied to them. Every other stage role denies TagMFADevice and UntagMFADevice outright.
MFA_TAG_RULES = {
    "OffboardUserRole": (offboarding_mark, "no virtual MFA device is marked, so one a cut-off run deactivated "
                                           "is never deleted"),
}
# The roles that may hold iam:TagUser, each only in a statement its rule accepts, and what
# breaks if TagUser is denied to it. Every other stage role denies TagUser outright.
TAG_USER_RULES = {
    "CreateUserRole": (tag_on_create, "every CreateUser with tags is refused"),
    "OffboardUserRole": (offboarded_tags, "no disabled user is marked offboarded, so none is ever deleted"),
}
CREDENTIAL_WRITES = {"iam:CreateAccessKey", "iam:DeleteAccessKey", "iam:UpdateAccessKey", "iam:CreateLoginProfile"}
# Every IAM write whose resource is the user: only on users tagged managed (IAM checks the tag
# of the user the request names).
MANAGED_USER_WRITES = CREDENTIAL_WRITES | {
    "iam:DeleteUser", "iam:DeleteLoginProfile", "iam:DeleteSigningCertificate", "iam:DeleteSSHPublicKey",
    "iam:DeleteServiceSpecificCredential", "iam:DeactivateMFADevice", "iam:DetachUserPolicy", "iam:DeleteUserPolicy"}
# IAM authorises these on another resource than the user, with no condition that reaches the
# user: each only on its own kind of resource, alone in its statement. That offboard-user removes
# memberships and deletes devices only of users it owns is the code's doing (residuals, SECURITY.md).
# (TagMFADevice and ListMFADeviceTags are authorised on the device too.) Each value: the resources
# the action may be on (any one of them, as the whole Resource), and their kind.
ALLOWED_GROUPS = {"Ref": "AllowedGroupArns"}
NOT_ON_THE_USER = {"iam:RemoveUserFromGroup": ([GROUPS, ALLOWED_GROUPS], "groups"),
                   "iam:DeleteVirtualMFADevice": ([MFA_DEVICES], "MFA devices"),
                   "iam:TagMFADevice": ([MFA_DEVICES], "MFA devices"),
                   "iam:ListMFADeviceTags": ([MFA_DEVICES], "MFA devices")}
FUNCTIONS = {"CreateUserFunction": "create-user", "IssueCredentialsFunction": "issue-credentials",
             "NotifyUserFunction": "notify-user", "RotateKeysFunction": "rotate-keys",
             "OffboardUserFunction": "offboard-user", "ChangeAccessFunction": "change-access"}
# The stages that check hand-off messages against the pipeline's records and log
# alarm = "untrusted_message" for one that matches none (SECURITY.md, "Stages that trust no
# message"): each must have that alarm.
CHECKS_HANDOFFS = {"create-user", "issue-credentials", "notify-user", "rotate-keys"}
# The stages that do not, and why; no untrusted-message alarm is required of them (it would watch
# a log line they never write). A new stage must be in one of the two.
NO_HANDOFFS = {"offboard-user": "reads tickets only, checked against IAM and the pipeline's records (a ticket that "
                                "does not match them is refused, not untrusted); it writes no untrusted_message line",
               "change-access": "reads tickets only, checked against the allow-lists, IAM and the pipeline's records "
                                "(refused, not untrusted); it writes no untrusted_message line"}
# Each ticket kind's rule on the ticket bus: its detail-type, delivered to its own stage's queue
# (dead letters to that queue's dead-letter queue) and to nothing else; the queue's Allow names
# that rule alone.
RULES = {
    "TicketRule": ("Onboarding Ticket Approved", "CreateUserQueue", "CreateUserDeadLetterQueue"),
    "OffboardingRule": ("Offboarding Ticket Approved", "OffboardUserQueue", "OffboardUserDeadLetterQueue"),
    "AccessChangeRule": ("Access Change Approved", "ChangeAccessQueue", "ChangeAccessDeadLetterQueue"),
}
COMMON_ENV = {"TABLE_NAME", "SENDER_EMAIL", "BATCH_CONCURRENCY", "ALLOWED_EMAIL_DOMAINS", "SECRET_PREFIX",
              "METRICS_NAMESPACE"}
ENV = {
    "CreateUserFunction": {"NEXT_QUEUE_URL", "ALLOWED_GROUPS", "ALLOWED_MANAGED_POLICIES", "DEFAULT_BOUNDARY",
                           "CUSTOM_PASSWORD_PREFIX"},
    "IssueCredentialsFunction": {"NEXT_QUEUE_URL", "CUSTOM_PASSWORD_PREFIX", "CHANGE_PASSWORD_POLICY_ARN",
                                 "SECRETS_KMS_KEY_ID"},
    "NotifyUserFunction": {"SECRETS_KMS_KEY_ID"},
    "RotateKeysFunction": {"NEXT_QUEUE_URL", "ROTATION_AGE_DAYS", "GRACE_DAYS", "DELETE_AFTER_DAYS", "WARNING_DAYS",
                           "ROTATION_HOLD_DAYS"},
    "OffboardUserFunction": {"CUSTOM_PASSWORD_PREFIX", "RETENTION_DAYS", "SECRET_RECOVERY_DAYS", "EXPIRY_WARNING_DAYS"},
    "ChangeAccessFunction": {"ALLOWED_GROUPS", "ALLOWED_MANAGED_POLICIES"},
}
# Every pipeline resource kind the fence must deny (a fragment of the ARN).
FENCED = ["lambda:", ":function:${Prefix}-*", ":sqs:", ":event-bus/${Prefix}-*", ":rule/${Prefix}-*",
          ":table/${Prefix}-*", ":schedule/*/${Prefix}-*", ":log-group:/aws/lambda/${Prefix}-*",
          ":alarm:${Prefix}-*", ":sns:", ":role/${Prefix}-*", ":policy/${Prefix}-*", ":alias/${Prefix}",
          ":stack/${AWS::StackName}/*"]
IAM_WRITE_VERBS = ["Add", "Attach", "Detach", "Pass", "Put", "Remove", "Reset", "Set", "Tag", "Untag", "Update",
                   "Upload", "Create", "Delete", "Enable", "Deactivate", "Resync", "Change"]
KMS_USE = {"kms:*", "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKey*", "kms:ReEncrypt*",
           "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:CreateGrant", "kms:Create*", "kms:Generate*"}


def load():
    template, errors = decode(str(TEMPLATE))
    assert not errors, errors
    return template


def as_list(value):
    return value if isinstance(value, list) else [value]


def text(value):
    """The text of a string, a Fn::Sub, or a list of them, for matching."""
    if isinstance(value, list):
        return " ".join(text(v) for v in value)
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    return str(value)


def of_type(template, kind):
    return {n: r for n, r in template["Resources"].items() if r["Type"] == kind}


def role_statements(template, name):
    """The statements of a role: inline, and of every AWS::IAM::Policy attached to it."""
    role = template["Resources"][name]
    for policy in role["Properties"].get("Policies", []):
        yield from policy["PolicyDocument"]["Statement"]
    for policy in of_type(template, "AWS::IAM::Policy").values():
        if {"Ref": name} in policy["Properties"].get("Roles", []):
            yield from policy["Properties"]["PolicyDocument"]["Statement"]


def cond(st, operator):
    return st.get("Condition", {}).get(operator, {})


def problems(template):
    """Every violated rule, as text; empty when the template is sound."""
    found = []
    res = template["Resources"]
    found += role_problems(template)
    found += fence_problems(template)
    found += key_problems(template)
    found += intake_problems(template)
    found += operations_problems(template)
    found += function_problems(template)

    rules = str(template.get("Rules", {}))
    for policy in ("AdministratorAccess", "IAMFullAccess"):
        if f"arn:aws:iam::aws:policy/{policy}" not in rules or "Fn::Not" not in rules:
            found.append(f"Rules: AllowedManagedPolicies may hold {policy}")
    params = template["Parameters"]
    for name in ("DefaultBoundary", "AllowedBoundaries"):
        if name in params:
            found.append(f"Parameters: {name} is back; the fence is the only boundary")
    if "Default" in params["AlarmEmail"] or "AllowedPattern" not in params["AlarmEmail"]:
        found.append("Parameters: AlarmEmail is optional")
    if "AllowedPattern" not in params["Prefix"] or params["Prefix"].get("MaxLength", 99) > 32:
        found.append("Parameters: Prefix is not constrained to fit every name")
    table = res["StateTable"]["Properties"]
    if table.get("TableName") != {"Fn::Sub": "${Prefix}-state"}:
        found.append("StateTable: not named ${Prefix}-state")
    if not table.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
        found.append("StateTable: no point-in-time recovery")
    if not table.get("TimeToLiveSpecification", {}).get("Enabled"):
        found.append("StateTable: no TTL")
    return found


def role_problems(template):
    found = []
    for name, role in of_type(template, "AWS::IAM::Role").items():
        if name not in ALLOWED_ACTIONS:
            found.append(f"{name}: a role nobody checks")
            continue
        if role["Properties"].get("ManagedPolicyArns"):
            found.append(f"{name}: managed policies (grants nobody reviews here)")
        if not text(role["Properties"].get("RoleName", "")).startswith("${Prefix}-"):
            found.append(f"{name}: not named ${{Prefix}}-...")
        denied = set()
        granted = set()
        for st in role_statements(template, name):
            actions = as_list(st.get("Action", []))
            if st["Effect"] == "Deny":
                denied |= set(actions)
                continue
            granted |= set(actions)
            if "NotAction" in st or "NotResource" in st:
                found.append(f"{name}: Allow with NotAction/NotResource")
            for action in actions:
                if "*" in action:
                    found.append(f"{name}: wildcard action {action}")
                elif action not in ALLOWED_ACTIONS[name]:
                    found.append(f"{name}: {action} is not a call its code makes")
            resources = as_list(st["Resource"])
            if "*" in resources and any(a.startswith("iam:") and not a.split(":")[1].startswith(("Get", "List"))
                                        for a in actions):
                found.append(f"{name}: IAM write {actions} on Resource '*'")
            if "iam:CreateUser" in actions:
                eq = cond(st, "StringEquals")
                if text(eq.get("iam:PermissionsBoundary")) != FENCE_ARN:
                    found.append(f"{name}: iam:CreateUser without the fence as iam:PermissionsBoundary")
                if eq.get(f"aws:RequestTag/{MANAGED}") != "true":
                    found.append(f"{name}: iam:CreateUser without the managed tag")
            if "iam:AttachUserPolicy" in actions:
                eq = cond(st, "StringEquals")
                if "iam:PolicyARN" not in cond(st, "ArnEquals"):
                    found.append(f"{name}: iam:AttachUserPolicy without an iam:PolicyARN condition")
                elif cond(st, "ArnEquals")["iam:PolicyARN"] not in ATTACHABLE:
                    found.append(f"{name}: iam:AttachUserPolicy beyond the allow-listed policies "
                                 f"({cond(st, 'ArnEquals')['iam:PolicyARN']})")
                if text(eq.get("iam:PermissionsBoundary")) != FENCE_ARN:
                    found.append(f"{name}: iam:AttachUserPolicy on users outside the fence")
                if eq.get(f"iam:ResourceTag/{MANAGED}") != "true":
                    found.append(f"{name}: iam:AttachUserPolicy on users the pipeline did not create")
            if "iam:TagUser" in actions:
                if name not in TAG_USER_RULES:
                    found.append(f"{name}: iam:TagUser allowed (only {' and '.join(TAG_USER_RULES)} may tag users, "
                                 "each as its rule says)")
                else:
                    found += [f"{name}: {p}" for p in TAG_USER_RULES[name][0](st)]
                if set(actions) != {"iam:TagUser"}:
                    found.append(f"{name}: iam:TagUser shares a statement with {sorted(set(actions) - {'iam:TagUser'})}")
                if text(st["Resource"]) != USERS:
                    found.append(f"{name}: iam:TagUser beyond users")
            if "iam:AddUserToGroup" in actions and st["Resource"] != {"Ref": "AllowedGroupArns"}:
                found.append(f"{name}: iam:AddUserToGroup beyond the allow-listed groups")
            if name in ALLOW_LISTED_REMOVALS:
                if "iam:RemoveUserFromGroup" in actions and st["Resource"] != ALLOWED_GROUPS:
                    found.append(f"{name}: iam:RemoveUserFromGroup beyond the allow-listed groups")
                if "iam:DetachUserPolicy" in actions and \
                        cond(st, "ArnEquals").get("iam:PolicyARN") != {"Ref": "AllowedManagedPolicies"}:
                    found.append(f"{name}: iam:DetachUserPolicy beyond the allow-listed policies")
            for action in sorted(set(actions) & MANAGED_USER_WRITES):
                if cond(st, "StringEquals").get(f"iam:ResourceTag/{MANAGED}") != "true":
                    found.append(f"{name}: {action} not limited to the pipeline's users")
            for action, (arns, kind) in NOT_ON_THE_USER.items():
                if action not in actions:
                    continue
                if set(actions) != {action}:
                    found.append(f"{name}: {action} shares a statement with {sorted(set(actions) - {action})}")
                if not any(st["Resource"] == arn or st["Resource"] == {"Fn::Sub": arn} for arn in arns):
                    found.append(f"{name}: {action} beyond {kind} ({text(st['Resource'])})")
            if "iam:TagMFADevice" in actions:
                if name not in MFA_TAG_RULES:
                    found.append(f"{name}: iam:TagMFADevice allowed (only {' and '.join(MFA_TAG_RULES)} may mark MFA "
                                 "devices, each as its rule says)")
                else:
                    found += [f"{name}: {p}" for p in MFA_TAG_RULES[name][0](st)]
            if "secretsmanager:DeleteSecret" in actions:
                if {text(r) for r in resources} != {USER_SECRETS}:
                    found.append(f"{name}: secretsmanager:DeleteSecret beyond the users' secrets ({text(st['Resource'])})")
                window = cond(st, "NumericGreaterThanEquals").get("secretsmanager:RecoveryWindowInDays")
                if window is None or int(window) < MIN_RECOVERY_DAYS:
                    found.append(f"{name}: secretsmanager:DeleteSecret without a recovery window of at least "
                                 f"{MIN_RECOVERY_DAYS} days (NumericGreaterThanEquals secretsmanager:RecoveryWindowInDays)")
                # Bool or BoolIfExists: a request naming a window carries no ForceDeleteWithoutRecovery
                # (the API takes one or the other), and the window is required above.
                if "false" not in (cond(st, "Bool").get("secretsmanager:ForceDeleteWithoutRecovery"),
                                   cond(st, "BoolIfExists").get("secretsmanager:ForceDeleteWithoutRecovery")):
                    found.append(f"{name}: secretsmanager:DeleteSecret without secretsmanager:ForceDeleteWithoutRecovery = false")
            if "ses:SendEmail" in actions:
                if "ses:FromAddress" not in cond(st, "StringEquals"):
                    found.append(f"{name}: ses:SendEmail from any address")
                if "ses:Recipients" not in cond(st, "ForAllValues:StringLike"):
                    found.append(f"{name}: ses:SendEmail to any domain")
            if "secretsmanager:CreateSecret" in actions and "secretsmanager:KmsKeyId" not in cond(st, "StringEquals"):
                found.append(f"{name}: secretsmanager:CreateSecret without the pipeline's key")
            if any(a.startswith("secretsmanager:") for a in actions):
                if not all(":secret:${SecretPrefix}*" in text(r) or ":secret:${CustomPasswordSecretPrefix}*" in text(r)
                           for r in resources):
                    found.append(f"{name}: secrets beyond the two prefixes")
                if any("${CustomPasswordSecretPrefix}" in text(r) for r in resources) and \
                        set(actions) != {"secretsmanager:GetSecretValue"}:
                    found.append(f"{name}: more than reading custom passwords")
        for action in sorted(ALLOWED_ACTIONS[name] - granted):
            found.append(f"{name}: ALLOWED_ACTIONS names {action}, which the role is not granted (keep the list exact)")
        if name in STAGE_ROLES:
            must_deny = ALWAYS_DENIED - {"iam:TagUser"} if name in TAG_USER_RULES else ALWAYS_DENIED
            must_deny = must_deny - {"iam:TagMFADevice"} if name in MFA_TAG_RULES else must_deny
            for action in sorted((must_deny | ALSO_DENIED.get(name, set())) - denied):
                found.append(f"{name}: no explicit Deny of {action}")
        if name in TAG_USER_RULES and "iam:TagUser" in denied:
            found.append(f"{name}: iam:TagUser denied, so {TAG_USER_RULES[name][1]}")
        if name in MFA_TAG_RULES and "iam:TagMFADevice" in denied:
            found.append(f"{name}: iam:TagMFADevice denied, so {MFA_TAG_RULES[name][1]}")
        if "secretsmanager:DeleteSecret" in granted and not any(
                st["Effect"] == "Deny" and "secretsmanager:DeleteSecret" in as_list(st.get("Action", []))
                and cond(st, "Bool").get("secretsmanager:ForceDeleteWithoutRecovery") == "true"
                for st in role_statements(template, name)):
            found.append(f"{name}: no explicit Deny of secretsmanager:DeleteSecret with ForceDeleteWithoutRecovery = true")
    return found


def fence_problems(template):
    found = []
    res = template["Resources"]
    fence = res.get("UserBoundary")
    if not fence or fence["Type"] != "AWS::IAM::ManagedPolicy":
        return ["UserBoundary: no fence"]
    if fence["Properties"].get("ManagedPolicyName") != {"Fn::Sub": "${Prefix}-user-boundary"}:
        found.append("UserBoundary: not named ${Prefix}-user-boundary")
    env = res["CreateUserFunction"]["Properties"]["Environment"]["Variables"]
    if env.get("DEFAULT_BOUNDARY") != {"Ref": "UserBoundary"}:
        found.append("CreateUserFunction: DEFAULT_BOUNDARY is not the fence")
    statements = fence["Properties"]["PolicyDocument"]["Statement"]
    denies = [st for st in statements if st["Effect"] == "Deny"]
    for st in statements:
        if st["Effect"] != "Allow":
            continue
        for action in as_list(st.get("Action", [])):
            if action == "*" or (action.startswith("iam:") and not action.startswith(
                    ("iam:Get", "iam:List", "iam:Generate", "iam:Simulate"))):
                if {text(r) for r in as_list(st.get("Resource", "*"))} - OWN:
                    found.append(f"UserBoundary: allows {action} beyond one's own user and MFA device")
        if "NotAction" in st and as_list(st["NotAction"]) != ["iam:*"]:
            found.append("UserBoundary: its NotAction cap reaches into IAM")
    plain = [st for st in denies if "Condition" not in st]
    for verb in IAM_WRITE_VERBS:
        if not any(f"iam:{verb}*" in as_list(st.get("Action", [])) for st in plain):
            found.append(f"UserBoundary: iam:{verb}* is not denied")
    def resources(st, key="Resource"):
        return {text(r) for r in as_list(st.get(key, []))}

    # offboard-user's mark on an MFA device is proof only if no user can set it: not on a device
    # (TagMFADevice; UntagMFADevice would remove one), not on the device it creates.
    for action in ("iam:TagMFADevice", "iam:UntagMFADevice"):
        if not any(resources(st) == {"*"} and any(fnmatch.fnmatchcase(action.lower(), a.lower())
                                                  for a in as_list(st.get("Action", []))) for st in plain):
            found.append(f"UserBoundary: {action} is not denied to onboarded users (the offboarding mark on an MFA "
                         "device could be forged)")
    if not any("iam:CreateVirtualMFADevice" in as_list(st.get("Action", [])) and resources(st) == {"*"}
               and "iam-provisioner:*" in as_list(cond(st, "ForAnyValue:StringLike").get("aws:TagKeys", []))
               for st in denies):
        found.append("UserBoundary: a user may create its own MFA device with the pipeline's tag keys "
                     "(the offboarding mark could be forged)")

    for own, where in ((OWN_USER, "oneself"), (OWN_USER_AT_PATH, "oneself at a path")):
        own_denied = {a for st in plain if own in resources(st) for a in as_list(st["Action"])}
        for action in ("iam:CreateAccessKey", "iam:CreateLoginProfile", "iam:DeleteUserPermissionsBoundary"):
            if action not in own_denied:
                found.append(f"UserBoundary: {action} on {where} is not denied")
    # A user created at a path must keep its own password and MFA device: the allow and the
    # deny's exception name both forms.
    change = [st for st in statements if st["Effect"] == "Allow" and "iam:ChangePassword" in as_list(st.get("Action", []))]
    if not change or not all({OWN_USER, OWN_USER_AT_PATH} <= resources(st) for st in change):
        found.append("UserBoundary: a user at a path may not change its own password (allow)")
    for st in denies:
        excepted = resources(st, "NotResource")
        if OWN_USER in excepted and OWN_USER_AT_PATH not in excepted:
            found.append(f"UserBoundary: {st.get('Sid')} spares user/NAME but not user/PATH/NAME")
        if OWN_MFA in excepted and OWN_MFA_AT_PATH not in excepted:
            found.append(f"UserBoundary: {st.get('Sid')} spares mfa/NAME but not mfa/PATH/NAME")
    # The principals that feed the pipeline may not be assumed (a trust policy trusting the
    # account root leaves the decision to the user's policies).
    for ref in ("OperatorRoleArn", "TicketSubmitterArns"):
        if not any(st.get("Resource") == {"Ref": ref} and STS_SESSION <= set(as_list(st.get("Action", [])))
                   for st in plain):
            found.append(f"UserBoundary: assuming {ref} (sts:AssumeRole, TagSession, SetSourceIdentity) is not denied")
    pipeline = " ".join(text(st.get("Resource", "")) for st in plain if st.get("Action") == "*")
    for fragment in FENCED:
        if fragment not in pipeline:
            found.append(f"UserBoundary: the pipeline's {fragment} is not denied")
    if not any(st.get("Resource") == {"Fn::GetAtt": ["SecretsKey", "Arn"]} and st.get("Action") == "kms:*"
               and "kms:ViaService" in cond(st, "StringNotEquals") for st in denies):
        found.append("UserBoundary: direct use of the secrets key is not denied")
    if not any("${SecretPrefix}${!aws:username}-??????" in text(st.get("NotResource", "")) for st in denies):
        found.append("UserBoundary: other users' secrets are not denied")
    # BatchGetSecretValue is authorised per secret as GetSecretValue, maybe without SecretId.
    if not any(text(st.get("NotResource", "")) == OWN_SECRET and "secretsmanager:GetSecretValue" in as_list(st["Action"])
               and cond(st, "StringEquals").get(f"aws:ResourceTag/{MANAGED}") == "true" for st in denies):
        found.append("UserBoundary: other users' secrets are not denied by their managed tag (no SecretId)")
    if not any("NotAction" in st and ":secret:${SecretPrefix}*" in text(st.get("Resource", "")) for st in denies):
        found.append("UserBoundary: writing the users' secrets is not denied")
    return found


def key_problems(template):
    found = []
    res = template["Resources"]
    key = res["SecretsKey"]["Properties"]
    if not key.get("EnableKeyRotation"):
        found.append("SecretsKey: no rotation")
    if res["SecretsKeyAlias"]["Properties"]["AliasName"] != {"Fn::Sub": "alias/${Prefix}"}:
        found.append("SecretsKeyAlias: not alias/${Prefix}")
    for st in key["KeyPolicy"]["Statement"]:
        actions = set(as_list(st["Action"]))
        principal = text(st["Principal"].get("AWS", ""))
        if principal.endswith(":root") and not st.get("Condition") and actions & KMS_USE:
            found.append(f"SecretsKey: the account may use the key ({sorted(actions & KMS_USE)})")
        if actions & KMS_USE and cond(st, "StringEquals").get("kms:ViaService") != \
                {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}:
            found.append(f"SecretsKey: {st.get('Sid')} uses the key outside Secrets Manager")
        if principal.endswith(":root") and actions & KMS_USE and \
                "${!aws:username}" not in text(cond(st, "StringLike").get("kms:EncryptionContext:SecretARN", "")):
            found.append("SecretsKey: account principals may decrypt secrets other than their own")
    topic = res["AlarmTopic"]["Properties"]
    if topic.get("KmsMasterKeyId") in (None, "alias/aws/sns"):
        found.append("AlarmTopic: not encrypted with a key CloudWatch can use")
    alarms_key = str(res["AlarmsKey"]["Properties"]["KeyPolicy"])
    if "cloudwatch.amazonaws.com" not in alarms_key:
        found.append("AlarmsKey: CloudWatch cannot use it")
    if not any(s.get("Protocol") == "email" and s.get("Endpoint") == {"Ref": "AlarmEmail"}
               for s in topic.get("Subscription", [])):
        found.append("AlarmTopic: AlarmEmail is not subscribed")
    return found


def intake_problems(template):
    found = []
    res = template["Resources"]
    bus_policy = res["TicketBus"]["Properties"].get("Policy", {"Statement": []})
    if not any(st["Effect"] == "Deny" and st["Principal"] == "*" and st["Action"] == "events:PutEvents"
               and cond(st, "ArnNotEquals").get("aws:PrincipalArn") == {"Ref": "TicketSubmitterArns"}
               for st in bus_policy["Statement"]):
        found.append("TicketBus: PutEvents is not denied to everyone but the ticket submitters")
    policies = of_type(template, "AWS::SQS::QueuePolicy").values()
    for queue in of_type(template, "AWS::SQS::Queue"):
        docs = [p["Properties"]["PolicyDocument"] for p in policies if {"Ref": queue} in p["Properties"]["Queues"]]
        denies = [st for d in docs for st in d["Statement"] if st["Effect"] == "Deny" and st["Principal"] == "*"]
        sends = [st for st in denies if "sqs:SendMessage" in as_list(st["Action"])]
        receives = [st for st in denies if "sqs:ReceiveMessage" in as_list(st["Action"])]
        for kind, sts in (("sqs:SendMessage", sends), ("sqs:ReceiveMessage", receives)):
            if not sts:
                found.append(f"{queue}: {kind} is not denied to other principals")
            elif not all({"Ref": "OperatorRoleArn"} in as_list(cond(st, "ArnNotEquals").get("aws:PrincipalArn"))
                         for st in sts):
                found.append(f"{queue}: {kind} deny does not name the operators' role as the exception")
        for d in docs:
            for st in d["Statement"]:
                if st["Effect"] == "Allow" and "aws:SourceArn" not in cond(st, "ArnEquals"):
                    found.append(f"{queue}: an Allow without aws:SourceArn")
    found += rule_problems(template)
    # A stage's queue is received from by the stage's role and the operators, nobody else.
    for fn in FUNCTIONS:
        role = res[fn]["Properties"]["Role"]["Fn::GetAtt"][0]
        for event in res[fn]["Properties"].get("Events", {}).values():
            if event["Type"] != "SQS":
                continue
            queue = event["Properties"]["Queue"]["Fn::GetAtt"][0]
            excepted = [as_list(cond(st, "ArnNotEquals").get("aws:PrincipalArn")) for p in policies
                        if {"Ref": queue} in p["Properties"]["Queues"] for st in p["Properties"]["PolicyDocument"]["Statement"]
                        if st["Effect"] == "Deny" and "sqs:ReceiveMessage" in as_list(st["Action"])]
            want = [{"Fn::GetAtt": [role, "Arn"]}, {"Ref": "OperatorRoleArn"}]
            if not excepted or any(sorted(map(str, e)) != sorted(map(str, want)) for e in excepted):
                found.append(f"{queue}: received by others than {role} and the operators ({excepted})")
    for fn in FUNCTIONS:
        if not any(p["Properties"]["FunctionName"] == {"Ref": fn} and p["Properties"]["Principal"] == {"Ref": "OperatorRoleArn"}
                   for p in of_type(template, "AWS::Lambda::Permission").values()):
            found.append(f"{fn}: the operators' role may not invoke it")
    for p in of_type(template, "AWS::Lambda::Permission").values():
        if p["Properties"]["Principal"] != {"Ref": "OperatorRoleArn"}:
            found.append(f"{p['Properties']['FunctionName']}: invocable by {p['Properties']['Principal']}")
    return found


def rule_problems(template):
    found = []
    res = template["Resources"]
    rules = of_type(template, "AWS::Events::Rule")
    if set(rules) != set(RULES):
        found.append(f"rules {sorted(rules)} are not {sorted(RULES)}")
    policies = of_type(template, "AWS::SQS::QueuePolicy").values()
    for name, (detail_type, queue, dlq) in RULES.items():
        props = rules.get(name, {}).get("Properties")
        if props is None:
            continue
        if props.get("EventBusName") != {"Ref": "TicketBus"} or props.get("EventPattern") != {
                "source": ["onboarding.tickets"], "detail-type": [detail_type]}:
            found.append(f"{name}: does not match exactly {detail_type!r} tickets on the ticket bus")
        targets = props.get("Targets", [])
        if [(t.get("Arn"), t.get("DeadLetterConfig", {}).get("Arn")) for t in targets] != [
                ({"Fn::GetAtt": [queue, "Arn"]}, {"Fn::GetAtt": [dlq, "Arn"]})]:
            found.append(f"{name}: {detail_type!r} tickets delivered elsewhere than {queue} (dead letters {dlq}): "
                         f"{targets}")
        for q in (queue, dlq):
            sources = [cond(st, "ArnEquals").get("aws:SourceArn") for p in policies if {"Ref": q} in p["Properties"]["Queues"]
                       for st in p["Properties"]["PolicyDocument"]["Statement"] if st["Effect"] == "Allow"]
            if sources != [{"Fn::GetAtt": [name, "Arn"]}]:
                found.append(f"{q}: its Allow names another source than {name} ({sources})")
    return found


def operations_problems(template):
    found = []
    res = template["Resources"]
    log_groups = of_type(template, "AWS::Logs::LogGroup")
    filters = of_type(template, "AWS::Logs::MetricFilter").values()
    alarms = of_type(template, "AWS::CloudWatch::Alarm").values()
    for fn, short in FUNCTIONS.items():
        props = res[fn]["Properties"]
        logging = props.get("LoggingConfig", {})
        group = logging.get("LogGroup", {}).get("Ref")
        if logging.get("LogFormat") != "JSON" or group not in log_groups:
            found.append(f"{fn}: does not log JSON to a log group of the stack")
            continue
        lg = log_groups[group]["Properties"]
        if lg.get("LogGroupName") != {"Fn::Sub": f"/aws/lambda/${{Prefix}}-{short}"}:
            found.append(f"{group}: not named /aws/lambda/${{Prefix}}-{short}")
        if "RetentionInDays" not in lg:
            found.append(f"{group}: kept forever (no retention)")
        if short not in CHECKS_HANDOFFS and short not in NO_HANDOFFS:
            found.append(f"{fn}: neither a stage that checks hand-off messages nor one listed as not checking any")
        metric = [f["Properties"]["MetricTransformations"][0]["MetricName"] for f in filters
                  if f["Properties"]["LogGroupName"] == {"Ref": group}
                  and f["Properties"]["FilterPattern"] == '{ $.alarm = "untrusted_message" }']
        if short in CHECKS_HANDOFFS and (not metric or not any(a["Properties"].get("MetricName") == metric[0]
                                                               for a in alarms)):
            found.append(f"{group}: no alarm on untrusted messages")
        if short != "rotate-keys":
            metric = [f["Properties"]["MetricTransformations"][0]["MetricName"] for f in filters
                      if f["Properties"]["LogGroupName"] == {"Ref": group}
                      and f["Properties"]["FilterPattern"] == '{ $.alarm = "deployment_fault" }']
            if not metric or not any(a["Properties"].get("MetricName") == metric[0] for a in alarms):
                found.append(f"{group}: no alarm on faults of the deployment")
    for group, markers in MARKERS.items():
        for marker in markers:
            metric = [f["Properties"]["MetricTransformations"][0]["MetricName"] for f in filters
                      if f["Properties"]["LogGroupName"] == {"Ref": group}
                      and f["Properties"]["FilterPattern"] == '{ $.alarm = "%s" }' % marker]
            if not metric or not any(a["Properties"].get("MetricName") == metric[0] for a in alarms):
                found.append(f"{group}: no alarm on {marker}")
    queues = of_type(template, "AWS::SQS::Queue")
    alarmed = " ".join(str(a["Properties"].get("Dimensions")) for a in alarms)
    for name, queue in queues.items():
        props = queue["Properties"]
        if not text(props.get("QueueName", "")).startswith("${Prefix}-"):
            found.append(f"{name}: not named ${{Prefix}}-...")
        if not props.get("SqsManagedSseEnabled") and "KmsMasterKeyId" not in props:
            found.append(f"{name}: not encrypted")
        if "RedrivePolicy" in props:
            dlq = queues[props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]]["Properties"]
            if dlq.get("MessageRetentionPeriod", 345600) <= props.get("MessageRetentionPeriod", 345600):
                found.append(f"{name}: its dead-letter queue does not keep messages longer")
        elif name not in alarmed:
            found.append(f"{name}: no alarm on its depth")
    for alarm in alarms:
        if alarm["Properties"].get("AlarmActions") != [{"Ref": "AlarmTopic"}]:
            found.append(f"{text(alarm['Properties'].get('AlarmName'))}: tells nobody")
    found += schedule_problems(template)
    return found


def schedule_problems(template):
    """Each scheduled run: its schedule (UTC, its parameter, its input, retried), a role that only
    the Scheduler may assume and only for that schedule, that may invoke that function only; the
    function with the time a run needs, and an alarm on its errors (nobody waits on a schedule)."""
    found = []
    res = template["Resources"]
    schedules = of_type(template, "AWS::Scheduler::Schedule")
    alarms = of_type(template, "AWS::CloudWatch::Alarm").values()
    for fn, (logical, role, name, param, run_input) in SCHEDULES.items():
        short = FUNCTIONS[fn]
        fn_arn = {"Fn::GetAtt": [fn, "Arn"]}
        mine = [n for n, sch in schedules.items() if sch["Properties"]["Target"]["Arn"] == fn_arn]
        if mine != [logical]:
            found.append(f"no EventBridge Scheduler schedule for {short} (or more than {logical}: {mine})")
            continue
        props = schedules[logical]["Properties"]
        target = props["Target"]
        if props.get("Name") != {"Fn::Sub": name}:
            found.append(f"{logical}: not named {name}")
        if props.get("ScheduleExpression") != {"Ref": param} or props.get("ScheduleExpressionTimezone") != "UTC":
            found.append(f"{logical}: not the {param} parameter, in UTC")
        if target.get("Input") != run_input:
            found.append(f"{logical}: input is not {run_input}, the run {short} reads")
        if not target.get("RetryPolicy"):
            found.append(f"{logical}: no RetryPolicy")
        if target.get("RoleArn") != {"Fn::GetAtt": [role, "Arn"]}:
            found.append(f"{logical}: does not run as {role}")
        trust = res[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        if len(trust) != 1 or trust[0].get("Principal") != {"Service": "scheduler.amazonaws.com"} \
                or cond(trust[0], "StringEquals").get("aws:SourceAccount") != {"Ref": "AWS::AccountId"} \
                or cond(trust[0], "ArnEquals").get("aws:SourceArn") != {"Fn::Sub": SCHEDULE_ARN + name}:
            found.append(f"{role}: trust not bound to the schedule {name} (aws:SourceArn, aws:SourceAccount)")
        for st in role_statements(template, role):
            if st["Effect"] == "Allow" and st.get("Resource") != fn_arn:
                found.append(f"{role}: lambda:InvokeFunction beyond {short} ({st.get('Resource')})")
        fprops = res[fn]["Properties"]
        timeout = fprops.get("Timeout", template.get("Globals", {}).get("Function", {}).get("Timeout"))
        if timeout != SCHEDULED_TIMEOUT:
            found.append(f"{fn}: timeout {timeout} s, not {SCHEDULED_TIMEOUT}: a scheduled run stops starting work "
                         "60 s before its deadline")
        if not any(a["Properties"].get("Namespace") == "AWS/Lambda" and a["Properties"].get("MetricName") == "Errors"
                   and a["Properties"].get("Dimensions") == [{"Name": "FunctionName", "Value": {"Ref": fn}}]
                   for a in alarms):
            found.append(f"{fn}: no alarm on its errors (a failed scheduled run would tell nobody)")
    return found


def function_problems(template):
    found = []
    res = template["Resources"]
    globals_fn = template.get("Globals", {}).get("Function", {})
    common = set(globals_fn.get("Environment", {}).get("Variables", {})) - {"RUST_LOG"}
    if common != COMMON_ENV:
        found.append(f"Globals: environment {sorted(common)} is not {sorted(COMMON_ENV)}")
    for fn, short in FUNCTIONS.items():
        f = res[fn]
        props = f["Properties"]
        if props.get("FunctionName") != {"Fn::Sub": f"${{Prefix}}-{short}"}:
            found.append(f"{fn}: not named ${{Prefix}}-{short}")
        if props.get("Runtime", globals_fn.get("Runtime")) != "provided.al2023":
            found.append(f"{fn}: not provided.al2023")
        if props.get("Architectures", globals_fn.get("Architectures")) != ["arm64"]:
            found.append(f"{fn}: not arm64")
        if f.get("Metadata", {}).get("BuildMethod") != "rust-cargolambda":
            found.append(f"{fn}: not built by cargo-lambda")
        env = set(props.get("Environment", {}).get("Variables", {}))
        if env != ENV[fn]:
            found.append(f"{fn}: environment {sorted(env)} is not {sorted(ENV[fn])}")
        timeout = props.get("Timeout", globals_fn.get("Timeout"))
        for event_name, event in props.get("Events", {}).items():
            if event["Type"] != "SQS":
                continue
            ep = event["Properties"]
            where = f"{fn}.{event_name}"
            if ep.get("FunctionResponseTypes") != ["ReportBatchItemFailures"]:
                found.append(f"{where}: does not report batch item failures")
            if not ep.get("ScalingConfig", {}).get("MaximumConcurrency"):
                found.append(f"{where}: no maximum concurrency")
            queue = res[ep["Queue"]["Fn::GetAtt"][0]]["Properties"]
            if "RedrivePolicy" not in queue:
                found.append(f"{where}: queue without a dead-letter queue")
            elif not 1 <= queue["RedrivePolicy"].get("maxReceiveCount", 0) <= 10:
                found.append(f"{where}: maxReceiveCount out of 1..10")
            if queue.get("VisibilityTimeout", 30) < 6 * timeout:
                found.append(f"{where}: visibility timeout under 6x the function timeout")
    for fn in ("CreateUserFunction", "IssueCredentialsFunction", "NotifyUserFunction", "OffboardUserFunction",
               "ChangeAccessFunction"):
        if not any(e["Type"] == "SQS" for e in res[fn]["Properties"].get("Events", {}).values()):
            found.append(f"{fn}: no SQS event source")
    return found


def statement(template, role, sid):
    return next(st for st in role_statements(template, role) if st.get("Sid") == sid)


class TemplateSecurity(unittest.TestCase):
    def test_the_template_keeps_every_security_fact(self):
        self.assertEqual(problems(load()), [])

    def test_each_stage_is_classified_for_the_untrusted_message_alarm(self):
        """The alarm is asked of the four stages that check hand-off messages, not of offboard-user
        and change-access, which read tickets; no stage is both, none is neither."""
        self.assertEqual(CHECKS_HANDOFFS & set(NO_HANDOFFS), set())
        self.assertEqual(CHECKS_HANDOFFS | set(NO_HANDOFFS), set(FUNCTIONS.values()))
        self.assertEqual(CHECKS_HANDOFFS, {"create-user", "issue-credentials", "notify-user", "rotate-keys"})
        self.assertEqual(set(NO_HANDOFFS), {"offboard-user", "change-access"})

    def test_each_weakening_is_caught(self):
        """Each mutation undoes one fact; problems() must name it."""
        def mutated(change):
            template = copy.deepcopy(load())
            change(template)
            return problems(template)

        def fence(t):
            return t["Resources"]["UserBoundary"]["Properties"]["PolicyDocument"]["Statement"]

        res = lambda t: t["Resources"]  # noqa: E731
        cases = {
            "CreateUserRole: iam:DeleteUser is not a call": lambda t: statement(t, "CreateUserRole", "ReadUsers")[
                "Action"].append("iam:DeleteUser"),
            "CreateUserRole: iam:TagUser shares a statement": lambda t: statement(t, "CreateUserRole", "ReadUsers")[
                "Action"].append("iam:TagUser"),
            "CreateUserRole: iam:TagUser without aws:RequestTag/iam-provisioner:managed": lambda t: statement(
                t, "CreateUserRole", "TagOnlyAsPartOfCreateUser")["Condition"].pop("StringEquals"),
            "CreateUserRole: iam:TagUser without a ticket tag required": lambda t: statement(
                t, "CreateUserRole", "TagOnlyAsPartOfCreateUser")["Condition"].pop("Null"),
            "CreateUserRole: iam:TagUser without aws:RequestTag/iam-provisioner:managed = true": lambda t: statement(
                t, "CreateUserRole", "TagOnlyAsPartOfCreateUser").pop("Condition"),
            "CreateUserRole: iam:TagUser denied, so every CreateUser with tags is refused": lambda t: statement(
                t, "CreateUserRole", "NeverEscalate")["Action"].append("iam:TagUser"),
            "IssueCredentialsRole: iam:TagUser allowed": lambda t: statement(
                t, "IssueCredentialsRole", "CredentialsForManagedUsers")["Action"].append("iam:TagUser"),
            "CreateUserRole: wildcard action iam:*": lambda t: statement(t, "CreateUserRole", "ReadUsers")[
                "Action"].append("iam:*"),
            "without the fence as iam:PermissionsBoundary": lambda t: statement(
                t, "CreateUserRole", "CreateFencedManagedUsers")["Condition"]["StringEquals"].pop(
                "iam:PermissionsBoundary"),
            "iam:CreateAccessKey not limited": lambda t: statement(
                t, "IssueCredentialsRole", "CredentialsForManagedUsers").pop("Condition"),
            "secrets beyond the two prefixes": lambda t: statement(
                t, "IssueCredentialsRole", "CreateUserSecretsWithTheKey").__setitem__(
                "Resource", {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*"}),
            "ses:SendEmail to any domain": lambda t: statement(t, "NotifyUserRole", "Emails")["Condition"].pop(
                "ForAllValues:StringLike"),
            "RotateKeysRole: no explicit Deny of iam:TagUser": lambda t: statement(
                t, "RotateKeysRole", "NeverEscalate")["Action"].remove("iam:TagUser"),
            "UserBoundary: iam:Attach* is not denied": lambda t: next(
                st for st in fence(t) if st.get("Sid") == "DenyIamWrites")["Action"].remove("iam:Attach*"),
            "UserBoundary: allows iam:CreateAccessKey": lambda t: fence(t).append(
                {"Effect": "Allow", "Action": "iam:CreateAccessKey", "Resource": "*"}),
            "UserBoundary: iam:CreateAccessKey on oneself at a path is not denied": lambda t: next(
                st for st in fence(t) if st.get("Sid") == "DenyOwnCredentialsAndPolicies")["Resource"].pop(1),
            "UserBoundary: a user at a path may not change its own password": lambda t: next(
                st for st in fence(t) if st.get("Sid") == "CapOwnPasswordAndMfa")["Resource"].pop(1),
            "spares user/NAME but not user/PATH/NAME": lambda t: next(
                st for st in fence(t) if st.get("Sid") == "DenyIamCreateDeleteExceptOwnMfa")["NotResource"].pop(1),
            "spares mfa/NAME but not mfa/PATH/NAME": lambda t: next(
                st for st in fence(t) if st.get("Sid") == "DenyIamCreateDeleteExceptOwnMfa")["NotResource"].pop(3),
            "UserBoundary: assuming OperatorRoleArn": lambda t: next(
                st for st in fence(t) if st.get("Sid") == "DenyAssumingTheOperatorsRole")["Action"].remove(
                "sts:TagSession"),
            "UserBoundary: assuming TicketSubmitterArns": lambda t: fence(t).remove(next(
                st for st in fence(t) if st.get("Sid") == "DenyAssumingTheTicketSubmitters")),
            "not denied by their managed tag": lambda t: next(
                st for st in fence(t) if st.get("Sid") == "DenyOtherUsersTaggedSecrets").pop("Condition"),
            "IssueCredentialsRole: more than reading custom passwords": lambda t: statement(
                t, "IssueCredentialsRole", "ReadCustomPasswords").__setitem__(
                "Action", ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]),
            "UserBoundary: the pipeline's :table/${Prefix}-* is not denied": lambda t: next(
                st for st in fence(t) if st.get("Sid") == "DenyThePipelinesResources")["Resource"].pop(4),
            "SecretsKey: the account may use the key": lambda t: res(t)["SecretsKey"]["Properties"]["KeyPolicy"][
                "Statement"][0]["Action"].append("kms:Decrypt"),
            "NotifyUserQueue: sqs:SendMessage is not denied": lambda t: res(t)["NotifyUserQueuePolicy"][
                "Properties"]["PolicyDocument"]["Statement"].pop(0),
            "TicketBus: PutEvents is not denied": lambda t: res(t)["TicketBus"]["Properties"].pop("Policy"),
            "Rules: AllowedManagedPolicies may hold AdministratorAccess": lambda t: t.pop("Rules"),
            "kept forever (no retention)": lambda t: res(t)["NotifyUserLogGroup"]["Properties"].pop(
                "RetentionInDays"),
            "without a dead-letter queue": lambda t: res(t)["NotifyUserQueue"]["Properties"].pop("RedrivePolicy"),
            "AlarmTopic: not encrypted with a key CloudWatch can use": lambda t: res(t)["AlarmTopic"][
                "Properties"].__setitem__("KmsMasterKeyId", "alias/aws/sns"),
            "RotationScheduleRole: trust not bound to the schedule ${Prefix}-rotation": lambda t: res(t)["RotationScheduleRole"]["Properties"][
                "AssumeRolePolicyDocument"]["Statement"][0]["Condition"].pop("ArnEquals"),
            "RotateKeysLogGroup: no alarm on rotated_key_still_used": lambda t: res(t).pop("RotateKeysStillUsedAlarm"),
            "RotateKeysLogGroup: no alarm on rotation_user_failed": lambda t: res(t).pop("RotateKeysUserFailedFilter"),
            # offboard-user
            "OffboardUserRole: iam:DeleteUser not limited to the pipeline's users": lambda t: statement(
                t, "OffboardUserRole", "OffboardManagedUsers").pop("Condition"),
            "OffboardUserRole: iam:DeactivateMFADevice not limited to the pipeline's users": lambda t: statement(
                t, "OffboardUserRole", "OffboardManagedUsers")["Condition"]["StringEquals"].__setitem__(
                f"iam:ResourceTag/{MANAGED}", "false"),
            "OffboardUserRole: iam:TagUser of tag keys beyond": lambda t: statement(
                t, "OffboardUserRole", "TagOffboardedManagedUsers")["Condition"]["ForAllValues:StringEquals"][
                "aws:TagKeys"].append(MANAGED),
            "OffboardUserRole: iam:TagUser of any tag key": lambda t: statement(
                t, "OffboardUserRole", "TagOffboardedManagedUsers")["Condition"].pop("ForAllValues:StringEquals"),
            "OffboardUserRole: iam:TagUser on users the pipeline did not create": lambda t: statement(
                t, "OffboardUserRole", "TagOffboardedManagedUsers")["Condition"].pop("StringEquals"),
            "OffboardUserRole: iam:TagUser shares a statement": lambda t: statement(
                t, "OffboardUserRole", "OffboardManagedUsers")["Action"].append("iam:TagUser"),
            "OffboardUserRole: iam:TagUser beyond users": lambda t: statement(
                t, "OffboardUserRole", "TagOffboardedManagedUsers").__setitem__("Resource", "*"),
            "OffboardUserRole: iam:TagUser denied, so no disabled user is marked offboarded": lambda t: statement(
                t, "OffboardUserRole", "NeverEscalate")["Action"].append("iam:TagUser"),
            "OffboardUserRole: secretsmanager:DeleteSecret without a recovery window": lambda t: statement(
                t, "OffboardUserRole", "ScheduleUserSecretDeletion")["Condition"].pop("NumericGreaterThanEquals"),
            "OffboardUserRole: secretsmanager:DeleteSecret without a recovery window of at least 7": lambda t: statement(
                t, "OffboardUserRole", "ScheduleUserSecretDeletion")["Condition"]["NumericGreaterThanEquals"].__setitem__(
                "secretsmanager:RecoveryWindowInDays", 0),
            "OffboardUserRole: secretsmanager:DeleteSecret without secretsmanager:ForceDeleteWithoutRecovery = false":
                lambda t: statement(t, "OffboardUserRole", "ScheduleUserSecretDeletion")["Condition"].pop("BoolIfExists"),
            "OffboardUserRole: no explicit Deny of secretsmanager:DeleteSecret with ForceDeleteWithoutRecovery": lambda t:
                next(p for p in res(t)["OffboardUserRole"]["Properties"]["Policies"])["PolicyDocument"][
                    "Statement"].remove(statement(t, "OffboardUserRole", "NeverDeleteSecretsAtOnce")),
            "OffboardUserRole: secretsmanager:DeleteSecret beyond the users' secrets": lambda t: statement(
                t, "OffboardUserRole", "ScheduleUserSecretDeletion").__setitem__("Resource", {"Fn::Sub": (
                    "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
                    "${CustomPasswordSecretPrefix}*")}),
            "OffboardUserRole: iam:AddUserToGroup is not a call its code makes": lambda t: statement(
                t, "OffboardUserRole", "OffboardManagedUsers")["Action"].append("iam:AddUserToGroup"),
            "OffboardUserRole: iam:CreateAccessKey is not a call its code makes": lambda t: statement(
                t, "OffboardUserRole", "OffboardManagedUsers")["Action"].append("iam:CreateAccessKey"),
            "OffboardUserRole: no explicit Deny of iam:AddUserToGroup": lambda t: statement(
                t, "OffboardUserRole", "NeverEscalate")["Action"].remove("iam:AddUserToGroup"),
            "OffboardUserRole: no explicit Deny of iam:AttachUserPolicy": lambda t: statement(
                t, "OffboardUserRole", "NeverEscalate")["Action"].remove("iam:AttachUserPolicy"),
            "OffboardUserRole: no explicit Deny of iam:UntagUser": lambda t: statement(
                t, "OffboardUserRole", "NeverEscalate")["Action"].remove("iam:UntagUser"),
            "OffboardUserRole: iam:RemoveUserFromGroup beyond groups": lambda t: statement(
                t, "OffboardUserRole", "RemoveMembershipsOfManagedUsers").__setitem__(
                "Resource", [{"Fn::Sub": GROUPS}, {"Fn::Sub": USERS}]),
            "OffboardUserRole: iam:DeleteVirtualMFADevice beyond MFA devices": lambda t: statement(
                t, "OffboardUserRole", "DeleteVirtualMfaDevicesOfManagedUsers").__setitem__(
                "Resource", {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:*"}),
            "OffboardUserRole: iam:DeleteVirtualMFADevice shares a statement": lambda t: statement(
                t, "OffboardUserRole", "DeleteVirtualMfaDevicesOfManagedUsers").__setitem__(
                "Action", ["iam:DeleteVirtualMFADevice", "iam:DeactivateMFADevice"]),
            "OffboardUserRole: ALLOWED_ACTIONS names iam:DeleteSSHPublicKey, which the role is not granted": lambda t:
                statement(t, "OffboardUserRole", "OffboardManagedUsers")["Action"].remove("iam:DeleteSSHPublicKey"),
            "OffboardUserFunction: environment": lambda t: res(t)["OffboardUserFunction"]["Properties"]["Environment"][
                "Variables"].__setitem__("NEXT_QUEUE_URL", "x"),
            "OffboardUserLogGroup: no alarm on faults of the deployment": lambda t: res(t).pop(
                "OffboardUserDeploymentFaultAlarm"),
            "OffboardUserDeadLetterQueue: no alarm on its depth": lambda t: res(t).pop("OffboardUserDeadLetterAlarm"),
            "OffboardUserQueue: sqs:SendMessage is not denied": lambda t: res(t)["OffboardUserQueuePolicy"][
                "Properties"]["PolicyDocument"]["Statement"].pop(1),
            "OffboardUserDeadLetterQueue: sqs:ReceiveMessage is not denied": lambda t: res(t)[
                "OffboardUserDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"].pop(2),
            "OffboardUserFunction: the operators' role may not invoke it": lambda t: res(t).pop(
                "OffboardUserOperatorInvoke"),
            "OffboardUserFunction.Tickets: queue without a dead-letter queue": lambda t: res(t)["OffboardUserQueue"][
                "Properties"].pop("RedrivePolicy"),
            # offboard-user's mark on a virtual MFA device
            "OffboardUserRole: iam:TagMFADevice of any tag key": lambda t: statement(
                t, "OffboardUserRole", "MarkVirtualMfaDevicesOfManagedUsers").pop("Condition"),
            "OffboardUserRole: iam:TagMFADevice of tag keys beyond": lambda t: statement(
                t, "OffboardUserRole", "MarkVirtualMfaDevicesOfManagedUsers")["Condition"]["ForAllValues:StringEquals"][
                "aws:TagKeys"].append("owner"),
            "OffboardUserRole: iam:TagMFADevice beyond MFA devices": lambda t: statement(
                t, "OffboardUserRole", "MarkVirtualMfaDevicesOfManagedUsers").__setitem__("Resource", "*"),
            "OffboardUserRole: iam:TagMFADevice shares a statement": lambda t: statement(
                t, "OffboardUserRole", "MarkVirtualMfaDevicesOfManagedUsers").__setitem__(
                "Action", ["iam:TagMFADevice", "iam:ListMFADeviceTags"]),
            "OffboardUserRole: iam:TagMFADevice denied, so no virtual MFA device is marked": lambda t: statement(
                t, "OffboardUserRole", "NeverEscalate")["Action"].append("iam:TagMFADevice"),
            "OffboardUserRole: no explicit Deny of iam:UntagMFADevice": lambda t: statement(
                t, "OffboardUserRole", "NeverEscalate")["Action"].remove("iam:UntagMFADevice"),
            "OffboardUserRole: iam:ListMFADeviceTags beyond MFA devices": lambda t: statement(
                t, "OffboardUserRole", "FindMarkedVirtualMfaDevices").__setitem__("Resource", "*"),
            "OffboardUserRole: ALLOWED_ACTIONS names iam:ListVirtualMFADevices, which the role is not granted": lambda t:
                next(p for p in res(t)["OffboardUserRole"]["Properties"]["Policies"])["PolicyDocument"][
                    "Statement"].remove(statement(t, "OffboardUserRole", "ListUnassignedVirtualMfaDevices")),
            "IssueCredentialsRole: iam:TagMFADevice allowed": lambda t: statement(
                t, "IssueCredentialsRole", "ReadAccount")["Action"].append("iam:TagMFADevice"),
            "RotateKeysRole: no explicit Deny of iam:TagMFADevice": lambda t: statement(
                t, "RotateKeysRole", "NeverEscalate")["Action"].remove("iam:TagMFADevice"),
            "NotifyUserRole: no explicit Deny of iam:UntagMFADevice": lambda t: statement(
                t, "NotifyUserRole", "NeverEscalate")["Action"].remove("iam:UntagMFADevice"),
            "CreateUserRole: no explicit Deny of iam:TagMFADevice": lambda t: statement(
                t, "CreateUserRole", "NeverEscalate")["Action"].remove("iam:TagMFADevice"),
            "UserBoundary: iam:TagMFADevice is not denied to onboarded users": lambda t: next(
                st for st in fence(t) if st.get("Sid") == "DenyIamWrites")["Action"].remove("iam:Tag*"),
            "UserBoundary: iam:UntagMFADevice is not denied to onboarded users": lambda t: next(
                st for st in fence(t) if st.get("Sid") == "DenyIamWrites")["Action"].remove("iam:Untag*"),
            "UserBoundary: a user may create its own MFA device with the pipeline's tag keys": lambda t: fence(t).remove(
                next(st for st in fence(t) if st.get("Sid") == "DenyThePipelinesTagsOnNewMfaDevices")),
            # offboard-user's daily run
            "OffboardUserRole: ALLOWED_ACTIONS names iam:ListUsers, which the role is not granted": lambda t: next(
                p for p in res(t)["OffboardUserRole"]["Properties"]["Policies"])["PolicyDocument"]["Statement"].remove(
                statement(t, "OffboardUserRole", "ListUsers")),
            "no EventBridge Scheduler schedule for offboard-user": lambda t: res(t).pop("DailyLifecycle"),
            "DailyLifecycle: input is not {\"run\": \"daily\"}": lambda t: res(t)["DailyLifecycle"]["Properties"][
                "Target"].__setitem__("Input", '{"dry_run": false}'),
            "DailyLifecycle: not the LifecycleSchedule parameter, in UTC": lambda t: res(t)["DailyLifecycle"][
                "Properties"].pop("ScheduleExpressionTimezone"),
            "DailyLifecycle: no RetryPolicy": lambda t: res(t)["DailyLifecycle"]["Properties"]["Target"].pop(
                "RetryPolicy"),
            "DailyLifecycle: does not run as LifecycleScheduleRole": lambda t: res(t)["DailyLifecycle"]["Properties"][
                "Target"].__setitem__("RoleArn", {"Fn::GetAtt": ["RotationScheduleRole", "Arn"]}),
            "LifecycleScheduleRole: trust not bound to the schedule": lambda t: res(t)["LifecycleScheduleRole"][
                "Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Condition"].pop("ArnEquals"),
            "LifecycleScheduleRole: trust not bound to the schedule ${Prefix}-lifecycle": lambda t: res(t)[
                "LifecycleScheduleRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Condition"][
                "ArnEquals"].__setitem__("aws:SourceArn", {"Fn::Sub": SCHEDULE_ARN + "*"}),
            "LifecycleScheduleRole: trust not bound to the schedule ${Prefix}-lifecycle (aws:SourceArn, aws:SourceAccount)":
                lambda t: res(t)["LifecycleScheduleRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0][
                    "Condition"].pop("StringEquals"),
            "LifecycleScheduleRole: lambda:InvokeFunction beyond offboard-user": lambda t: res(t)[
                "LifecycleScheduleRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0].__setitem__(
                "Resource", {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:*"}),
            "LifecycleScheduleRole: lambda:UpdateFunctionCode is not a call": lambda t: res(t)["LifecycleScheduleRole"][
                "Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0].__setitem__(
                "Action", ["lambda:InvokeFunction", "lambda:UpdateFunctionCode"]),
            "OffboardUserFunction: timeout 60 s, not 900": lambda t: res(t)["OffboardUserFunction"]["Properties"].pop(
                "Timeout"),
            "OffboardUserFunction.Tickets: visibility timeout under 6x the function timeout": lambda t: res(t)[
                "OffboardUserQueue"]["Properties"].__setitem__("VisibilityTimeout", 360),
            "OffboardUserFunction: no alarm on its errors": lambda t: res(t).pop("OffboardUserErrorAlarm"),
            "OffboardUserLogGroup: no alarm on lifecycle_user_failed": lambda t: res(t).pop(
                "OffboardUserLifecycleUserFailedAlarm"),
            "OffboardUserLogGroup: no alarm on offboarded_user_restored": lambda t: res(t).pop(
                "OffboardUserRestoredFilter"),
            # change-access
            "ChangeAccessRole: iam:AttachUserPolicy without an iam:PolicyARN condition": lambda t: statement(
                t, "ChangeAccessRole", "AttachAllowListedPoliciesToFencedManagedUsers")["Condition"].pop("ArnEquals"),
            "ChangeAccessRole: iam:AttachUserPolicy beyond the allow-listed policies": lambda t: statement(
                t, "ChangeAccessRole", "AttachAllowListedPoliciesToFencedManagedUsers")["Condition"]["ArnEquals"].__setitem__(
                "iam:PolicyARN", "arn:aws:iam::aws:policy/*"),
            "ChangeAccessRole: iam:AttachUserPolicy on users outside the fence": lambda t: statement(
                t, "ChangeAccessRole", "AttachAllowListedPoliciesToFencedManagedUsers")["Condition"]["StringEquals"].pop(
                "iam:PermissionsBoundary"),
            "ChangeAccessRole: iam:AttachUserPolicy on users the pipeline did not create": lambda t: statement(
                t, "ChangeAccessRole", "AttachAllowListedPoliciesToFencedManagedUsers")["Condition"]["StringEquals"].pop(
                f"iam:ResourceTag/{MANAGED}"),
            "ChangeAccessRole: iam:DetachUserPolicy not limited to the pipeline's users": lambda t: statement(
                t, "ChangeAccessRole", "DetachAllowListedPoliciesFromManagedUsers")["Condition"].pop("StringEquals"),
            "ChangeAccessRole: iam:DetachUserPolicy beyond the allow-listed policies": lambda t: statement(
                t, "ChangeAccessRole", "DetachAllowListedPoliciesFromManagedUsers")["Condition"].pop("ArnEquals"),
            "ChangeAccessRole: iam:AddUserToGroup beyond the allow-listed groups": lambda t: statement(
                t, "ChangeAccessRole", "AddToAllowListedGroups").__setitem__("Resource", {"Fn::Sub": GROUPS}),
            "ChangeAccessRole: iam:RemoveUserFromGroup beyond the allow-listed groups": lambda t: statement(
                t, "ChangeAccessRole", "RemoveFromAllowListedGroups").__setitem__("Resource", {"Fn::Sub": GROUPS}),
            "ChangeAccessRole: iam:RemoveUserFromGroup shares a statement": lambda t: statement(
                t, "ChangeAccessRole", "RemoveFromAllowListedGroups").__setitem__(
                "Action", ["iam:RemoveUserFromGroup", "iam:AddUserToGroup"]),
            "ChangeAccessRole: no explicit Deny of iam:PutUserPermissionsBoundary": lambda t: statement(
                t, "ChangeAccessRole", "NeverEscalate")["Action"].remove("iam:PutUserPermissionsBoundary"),
            "ChangeAccessRole: no explicit Deny of iam:DeleteUserPermissionsBoundary": lambda t: statement(
                t, "ChangeAccessRole", "NeverEscalate")["Action"].remove("iam:DeleteUserPermissionsBoundary"),
            "ChangeAccessRole: no explicit Deny of iam:CreateAccessKey": lambda t: statement(
                t, "ChangeAccessRole", "NeverEscalate")["Action"].remove("iam:CreateAccessKey"),
            "ChangeAccessRole: no explicit Deny of iam:CreateUser": lambda t: statement(
                t, "ChangeAccessRole", "NeverEscalate")["Action"].remove("iam:CreateUser"),
            "ChangeAccessRole: no explicit Deny of iam:TagMFADevice": lambda t: statement(
                t, "ChangeAccessRole", "NeverEscalate")["Action"].remove("iam:TagMFADevice"),
            "ChangeAccessRole: iam:TagUser allowed": lambda t: statement(t, "ChangeAccessRole", "ReadUsers")[
                "Action"].append("iam:TagUser"),
            "ChangeAccessRole: iam:DeleteUser is not a call its code makes": lambda t: statement(
                t, "ChangeAccessRole", "ReadUsers")["Action"].append("iam:DeleteUser"),
            "ChangeAccessRole: iam:PutUserPermissionsBoundary is not a call its code makes": lambda t: statement(
                t, "ChangeAccessRole", "ReadUsers")["Action"].append("iam:PutUserPermissionsBoundary"),
            "ChangeAccessRole: ses:SendEmail to any domain": lambda t: statement(
                t, "ChangeAccessRole", "SummaryEmail")["Condition"].pop("ForAllValues:StringLike"),
            "ChangeAccessRole: ALLOWED_ACTIONS names iam:DetachUserPolicy, which the role is not granted": lambda t: next(
                p for p in res(t)["ChangeAccessRole"]["Properties"]["Policies"])["PolicyDocument"]["Statement"].remove(
                statement(t, "ChangeAccessRole", "DetachAllowListedPoliciesFromManagedUsers")),
            "ChangeAccessFunction: environment": lambda t: res(t)["ChangeAccessFunction"]["Properties"]["Environment"][
                "Variables"].pop("ALLOWED_GROUPS"),
            "ChangeAccessFunction: the operators' role may not invoke it": lambda t: res(t).pop(
                "ChangeAccessOperatorInvoke"),
            "ChangeAccessFunction.Tickets: queue without a dead-letter queue": lambda t: res(t)["ChangeAccessQueue"][
                "Properties"].pop("RedrivePolicy"),
            "ChangeAccessQueue: sqs:SendMessage is not denied": lambda t: res(t)["ChangeAccessQueuePolicy"][
                "Properties"]["PolicyDocument"]["Statement"].pop(1),
            "ChangeAccessQueue: received by others than ChangeAccessRole": lambda t: res(t)["ChangeAccessQueuePolicy"][
                "Properties"]["PolicyDocument"]["Statement"][2]["Condition"]["ArnNotEquals"].__setitem__(
                "aws:PrincipalArn", [{"Fn::GetAtt": ["CreateUserRole", "Arn"]}, {"Ref": "OperatorRoleArn"}]),
            "ChangeAccessDeadLetterQueue: sqs:ReceiveMessage is not denied": lambda t: res(t)[
                "ChangeAccessDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"].pop(2),
            "ChangeAccessDeadLetterQueue: no alarm on its depth": lambda t: res(t).pop("ChangeAccessDeadLetterAlarm"),
            "ChangeAccessLogGroup: no alarm on faults of the deployment": lambda t: res(t).pop(
                "ChangeAccessDeploymentFaultFilter"),
            "ChangeAccessLogGroup: kept forever (no retention)": lambda t: res(t)["ChangeAccessLogGroup"][
                "Properties"].pop("RetentionInDays"),
            "AccessChangeRule: does not match exactly 'Access Change Approved'": lambda t: res(t)["AccessChangeRule"][
                "Properties"]["EventPattern"].__setitem__("detail-type", ["Access Change Approved",
                                                                          "Onboarding Ticket Approved"]),
            "AccessChangeRule: 'Access Change Approved' tickets delivered elsewhere": lambda t: res(t)["AccessChangeRule"][
                "Properties"]["Targets"][0].__setitem__("Arn", {"Fn::GetAtt": ["CreateUserQueue", "Arn"]}),
            "ChangeAccessQueue: its Allow names another source than AccessChangeRule": lambda t: res(t)[
                "ChangeAccessQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]["Condition"][
                "ArnEquals"].__setitem__("aws:SourceArn", {"Fn::GetAtt": ["TicketRule", "Arn"]}),
            "rules ['AccessChangeRule', 'OffboardingRule', 'TicketRule', 'Unchecked']": lambda t: res(t).__setitem__(
                "Unchecked", copy.deepcopy(res(t)["AccessChangeRule"])),
            # The untrusted-message alarm is still required of the stages that check hand-offs.
            "CreateUserLogGroup: no alarm on untrusted messages": lambda t: res(t).pop("CreateUserUntrustedFilter"),
            "RotateKeysLogGroup: no alarm on untrusted messages": lambda t: res(t).pop("RotateKeysUntrustedAlarm"),
        }
        for expected, change in cases.items():
            with self.subTest(expected):
                found = mutated(change)
                self.assertTrue(any(expected in p for p in found), f"{expected!r} not in {found}")


if __name__ == "__main__":
    unittest.main()
