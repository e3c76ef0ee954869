"""Security facts of template.yaml that a change must not quietly undo.

Parsed with cfn-lint's decoder (CloudFormation's YAML, short-form intrinsics
included). Run by `make validate`, which `make test` runs: a role widened
here fails CI. The last test checks that these checks can fail.
"""

import copy
import pathlib
import unittest

from cfnlint.decode import decode

TEMPLATE = pathlib.Path(__file__).resolve().parent.parent / "template.yaml"
USER_WRITES_NEEDING_A_BOUNDARY = {"iam:CreateUser", "iam:AttachUserPolicy", "iam:PutUserPermissionsBoundary"}


def load():
    template, errors = decode(str(TEMPLATE))
    assert not errors, errors
    return template


def as_list(value):
    return value if isinstance(value, list) else [value]


def statements(role):
    for policy in role["Properties"].get("Policies", []):
        yield from policy["PolicyDocument"]["Statement"]


def roles(template):
    return {name: r for name, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role"}


def is_iam_write(action):
    service, _, verb = action.partition(":")
    return service == "iam" and not verb.startswith(("Get", "List"))


def problems(template):
    """Every violated rule, as text; empty when the template is sound."""
    found = []
    resources = template["Resources"]
    for name, role in roles(template).items():
        for st in statements(role):
            actions = as_list(st["Action"])
            if st["Effect"] != "Allow":
                continue
            for action in actions:
                if action in ("*", "iam:*") or action.endswith(":*"):
                    found.append(f"{name}: wildcard action {action}")
            if any(is_iam_write(a) for a in actions) and "*" in as_list(st["Resource"]):
                found.append(f"{name}: IAM write {actions} on Resource '*'")
            for action in set(actions) & USER_WRITES_NEEDING_A_BOUNDARY:
                cond = st.get("Condition", {}).get("StringEquals", {})
                if "iam:PermissionsBoundary" not in cond:
                    found.append(f"{name}: {action} without an iam:PermissionsBoundary condition")
            if "iam:AttachUserPolicy" in actions and "iam:PolicyARN" not in st.get("Condition", {}).get("ArnEquals", {}):
                found.append(f"{name}: iam:AttachUserPolicy without an iam:PolicyARN condition")
            if "iam:AddUserToGroup" in actions and st["Resource"] != {"Ref": "AllowedGroupArns"}:
                found.append(f"{name}: iam:AddUserToGroup beyond the allow-listed groups")
            for action in set(actions) & {"iam:CreateAccessKey", "iam:DeleteAccessKey", "iam:UpdateAccessKey", "iam:CreateLoginProfile"}:
                cond = st.get("Condition", {}).get("StringEquals", {})
                if cond.get("iam:ResourceTag/iam-provisioner:managed") != "true":
                    found.append(f"{name}: {action} not limited to the pipeline's users")
    denied = {a for st in statements(resources["CreateUserRole"]) if st["Effect"] == "Deny" for a in as_list(st["Action"])}
    for action in ("iam:PutUserPolicy", "iam:DeleteUserPermissionsBoundary", "iam:PutUserPermissionsBoundary",
                   "iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:DeletePolicy"):
        if action not in denied:
            found.append(f"CreateUserRole: no explicit Deny of {action}")

    functions = {n: r for n, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    globals_fn = template.get("Globals", {}).get("Function", {})
    for name, fn in functions.items():
        props = fn["Properties"]
        if props.get("Runtime", globals_fn.get("Runtime")) != "provided.al2023":
            found.append(f"{name}: not provided.al2023")
        if props.get("Architectures", globals_fn.get("Architectures")) != ["arm64"]:
            found.append(f"{name}: not arm64")
        if fn.get("Metadata", {}).get("BuildMethod") != "rust-cargolambda":
            found.append(f"{name}: not built by cargo-lambda")
        timeout = props.get("Timeout", globals_fn.get("Timeout"))
        for event_name, event in props.get("Events", {}).items():
            if event["Type"] != "SQS":
                continue
            ep = event["Properties"]
            where = f"{name}.{event_name}"
            if ep.get("FunctionResponseTypes") != ["ReportBatchItemFailures"]:
                found.append(f"{where}: does not report batch item failures")
            if not ep.get("ScalingConfig", {}).get("MaximumConcurrency"):
                found.append(f"{where}: no maximum concurrency")
            queue = resources[ep["Queue"]["Fn::GetAtt"][0]]["Properties"]
            if "RedrivePolicy" not in queue:
                found.append(f"{where}: queue without a dead-letter queue")
            elif not 1 <= queue["RedrivePolicy"].get("maxReceiveCount", 0) <= 10:
                found.append(f"{where}: maxReceiveCount out of 1..10")
            if queue.get("VisibilityTimeout", 30) < 6 * timeout:
                found.append(f"{where}: visibility timeout under 6x the function timeout")
    for name in ("CreateUserFunction", "IssueCredentialsFunction", "NotifyUserFunction"):
        if not any(e["Type"] == "SQS" for e in functions.get(name, {}).get("Properties", {}).get("Events", {}).values()):
            found.append(f"{name}: no SQS event source")
    table = resources["StateTable"]["Properties"]
    if table.get("BillingMode") != "PAY_PER_REQUEST":
        found.append("StateTable: not on-demand")
    if not table.get("TimeToLiveSpecification", {}).get("Enabled"):
        found.append("StateTable: no TTL")
    if not table.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
        found.append("StateTable: no point-in-time recovery")
    schedules = [r for r in resources.values() if r["Type"] == "AWS::Scheduler::Schedule"]
    if not any(s["Properties"]["Target"]["Arn"] == {"Fn::GetAtt": ["RotateKeysFunction", "Arn"]} for s in schedules):
        found.append("no EventBridge Scheduler schedule for rotate-keys")
    dlqs = [n for n, r in resources.items() if r["Type"] == "AWS::SQS::Queue" and n.endswith("DeadLetterQueue")]
    alarmed = {str(r["Properties"].get("Dimensions")) for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"}
    for dlq in dlqs:
        if not any(dlq in a for a in alarmed):
            found.append(f"{dlq}: no alarm on its depth")
    return found


class TemplateSecurity(unittest.TestCase):
    def test_the_template_keeps_every_security_fact(self):
        self.assertEqual(problems(load()), [])

    def test_a_widened_role_is_caught(self):
        template = load()
        widened = copy.deepcopy(template)
        widened["Resources"]["CreateUserRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(
            {"Effect": "Allow", "Action": "iam:*", "Resource": "*"})
        unbounded = copy.deepcopy(template)
        for st in statements(unbounded["Resources"]["CreateUserRole"]):
            if st.get("Sid") == "CreateUsersOnlyWithABoundary":
                del st["Condition"]["StringEquals"]["iam:PermissionsBoundary"]
        no_dlq = copy.deepcopy(template)
        del no_dlq["Resources"]["NotifyUserQueue"]["Properties"]["RedrivePolicy"]
        self.assertTrue(any("wildcard action iam:*" in p for p in problems(widened)))
        self.assertTrue(any("iam:CreateUser without" in p for p in problems(unbounded)))
        self.assertTrue(any("without a dead-letter queue" in p for p in problems(no_dlq)))


if __name__ == "__main__":
    unittest.main()
