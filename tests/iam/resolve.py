#!/usr/bin/env python3
"""Resolve template.yaml for the IAM simulator (issue 11, part "proof with a simulator").

Decodes the template with cfn-lint's decoder (short-form tags included), resolves the
intrinsic functions for the fixed parameter values of tests/iam/params.local.json plus the
pseudo parameters, and prints a JSON model of everything IAM evaluates:

  roles            logical id -> name, ARN, trust policy, inline policies, managed policy ARNs
  managed_policies logical id -> name, ARN, document (the fence UserBoundary among them)
  fence            the document of UserBoundary (null when the template has none yet)
  bus_policies     bus name -> policy document (EventBus.Policy or EventBusPolicy resources)
  queue_policies   queue name -> policy document
  key_policies     key logical id -> {arn, policy}
  secret_policies  secret ARN -> policy document
  function_policies function name -> policy document built from AWS::Lambda::Permission
  functions        logical id -> {name, arn, role (logical id), environment, sqs_event_sources}
  resources        logical id -> {type, ref, attributes}: the names and ARNs computed

Resolution is lazy (only what the model needs) and strict: an intrinsic it cannot resolve
(an unknown resource type, Fn::ImportValue, a parameter without value or default ...) raises,
it never drops a statement.

usage: resolve.py [--template template.yaml] [--params tests/iam/params.local.json] [--out FILE]
"""

import argparse
import json
import os
import sys

from cfnlint.decode import decode

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


class Unresolvable(Exception):
    pass


NO_VALUE = object()


class Resolver:
    def __init__(self, template, params):
        self.t = template
        self.pseudo = dict(params["Pseudo"])
        self.pseudo["AWS::NotificationARNs"] = []
        self.fake_key_id = params.get("FakeKeyId", "1234abcd-12ab-34cd-56ef-1234567890ab")
        self.params = {}
        given = params["Parameters"]
        for name, decl in (self.t.get("Parameters") or {}).items():
            if name in given:
                value = given[name]
            elif "Default" in decl:
                value = decl["Default"]
            else:
                raise Unresolvable(f"parameter {name} has no value in params.local.json and no Default")
            ptype = str(decl.get("Type", "String"))
            if ptype == "CommaDelimitedList" or ptype.startswith("List<"):
                value = [v.strip() for v in str(value).split(",")] if str(value) != "" else []
            else:
                value = str(value)
            self.params[name] = value
        self.resources = self.t.get("Resources") or {}
        self.mappings = self.t.get("Mappings") or {}
        self._cond_cache = {}

    # ------------------------------------------------------------------ helpers
    @property
    def account(self):
        return self.pseudo["AWS::AccountId"]

    @property
    def region(self):
        return self.pseudo["AWS::Region"]

    @property
    def partition(self):
        return self.pseudo["AWS::Partition"]

    def stack(self):
        return self.pseudo["AWS::StackName"]

    def prop(self, logical, key, default=None):
        props = self.resources[logical].get("Properties") or {}
        if key not in props:
            return default
        return self.resolve(props[key])

    def generated_name(self, logical):
        # CloudFormation names an unnamed resource <stack>-<logical id>-<random>.
        return f"{self.stack()}-{logical}-GENERATED"

    # ------------------------------------------------------------------ conditions
    def condition(self, name):
        if name not in self._cond_cache:
            conds = self.t.get("Conditions") or {}
            if name not in conds:
                raise Unresolvable(f"unknown condition {name}")
            self._cond_cache[name] = bool(self.resolve(conds[name]))
        return self._cond_cache[name]

    def resource_enabled(self, logical):
        cond = self.resources[logical].get("Condition")
        return True if cond is None else self.condition(cond)

    # ------------------------------------------------------------------ Ref / GetAtt
    def ref(self, name):
        if name in self.pseudo:
            return self.pseudo[name]
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.params:
            return self.params[name]
        if name in self.resources:
            return self.resource_ref(name)
        raise Unresolvable(f"Ref to unknown name {name}")

    def resource_ref(self, logical):
        rtype = self.resources[logical]["Type"]
        a, r, p = self.account, self.region, self.partition
        if rtype == "AWS::IAM::Role":
            return self.role_name(logical)
        if rtype == "AWS::IAM::ManagedPolicy":
            return self.getatt(logical, "PolicyArn")
        if rtype == "AWS::IAM::Group":
            return self.prop(logical, "GroupName") or self.generated_name(logical)
        if rtype == "AWS::IAM::User":
            return self.prop(logical, "UserName") or self.generated_name(logical)
        if rtype == "AWS::SQS::Queue":
            return f"https://sqs.{r}.amazonaws.com/{a}/{self.queue_name(logical)}"
        if rtype == "AWS::DynamoDB::Table":
            return self.prop(logical, "TableName") or self.generated_name(logical)
        if rtype == "AWS::Events::EventBus":
            return self.prop(logical, "Name")
        if rtype == "AWS::Events::Rule":
            return self.rule_name(logical)
        if rtype == "AWS::KMS::Key":
            return self.key_id(logical)
        if rtype == "AWS::KMS::Alias":
            return self.prop(logical, "AliasName")
        if rtype in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            return self.function_name(logical)
        if rtype == "AWS::SNS::Topic":
            return self.getatt(logical, "TopicArn")
        if rtype == "AWS::Logs::LogGroup":
            return self.prop(logical, "LogGroupName") or self.generated_name(logical)
        if rtype == "AWS::Scheduler::Schedule":
            return self.prop(logical, "Name") or self.generated_name(logical)
        if rtype == "AWS::SecretsManager::Secret":
            name = self.prop(logical, "Name") or self.generated_name(logical)
            return f"arn:{p}:secretsmanager:{r}:{a}:secret:{name}-AbCdEf"
        if rtype == "AWS::CloudWatch::Alarm":
            return self.prop(logical, "AlarmName") or self.generated_name(logical)
        raise Unresolvable(f"Ref to {logical} of type {rtype}: not modelled")

    def key_id(self, logical):
        # SecretsKey gets the fixed fake id of params.local.json; any other key one derived from
        # its logical id, so two keys never share an ARN.
        if logical == "SecretsKey":
            return self.fake_key_id
        import uuid
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"iam-sim/{logical}"))

    def role_name(self, logical):
        return self.prop(logical, "RoleName") or self.generated_name(logical)

    def queue_name(self, logical):
        name = self.prop(logical, "QueueName")
        if name:
            return name
        suffix = ".fifo" if self.prop(logical, "FifoQueue") else ""
        return self.generated_name(logical) + suffix

    def function_name(self, logical):
        return self.prop(logical, "FunctionName") or self.generated_name(logical)

    def bus_name_of(self, value):
        # EventBusName may be a name or an ARN.
        if value is None:
            return "default"
        return value.split("/")[-1] if value.startswith("arn:") else value

    def rule_name(self, logical):
        return self.prop(logical, "Name") or self.generated_name(logical)

    def getatt(self, logical, attr):
        if logical not in self.resources:
            raise Unresolvable(f"GetAtt of unknown resource {logical}")
        rtype = self.resources[logical]["Type"]
        a, r, p = self.account, self.region, self.partition
        table = {}
        if rtype == "AWS::IAM::Role":
            path = self.prop(logical, "Path") or "/"
            table = {"Arn": f"arn:{p}:iam::{a}:role{path}{self.role_name(logical)}",
                     "RoleId": f"AROA{logical.upper()[:16]}"}
        elif rtype == "AWS::IAM::ManagedPolicy":
            path = self.prop(logical, "Path") or "/"
            name = self.prop(logical, "ManagedPolicyName") or self.generated_name(logical)
            table = {"PolicyArn": f"arn:{p}:iam::{a}:policy{path}{name}"}
        elif rtype == "AWS::IAM::Group":
            path = self.prop(logical, "Path") or "/"
            table = {"Arn": f"arn:{p}:iam::{a}:group{path}{self.resource_ref(logical)}"}
        elif rtype == "AWS::SQS::Queue":
            name = self.queue_name(logical)
            table = {"Arn": f"arn:{p}:sqs:{r}:{a}:{name}", "QueueName": name,
                     "QueueUrl": f"https://sqs.{r}.amazonaws.com/{a}/{name}"}
        elif rtype == "AWS::DynamoDB::Table":
            name = self.resource_ref(logical)
            table = {"Arn": f"arn:{p}:dynamodb:{r}:{a}:table/{name}",
                     "StreamArn": f"arn:{p}:dynamodb:{r}:{a}:table/{name}/stream/1970-01-01T00:00:00.000"}
        elif rtype == "AWS::Events::EventBus":
            name = self.prop(logical, "Name")
            table = {"Arn": f"arn:{p}:events:{r}:{a}:event-bus/{name}", "Name": name}
        elif rtype == "AWS::Events::Rule":
            bus = self.bus_name_of(self.prop(logical, "EventBusName"))
            name = self.rule_name(logical)
            path = f"rule/{name}" if bus == "default" else f"rule/{bus}/{name}"
            table = {"Arn": f"arn:{p}:events:{r}:{a}:{path}"}
        elif rtype == "AWS::KMS::Key":
            table = {"Arn": f"arn:{p}:kms:{r}:{a}:key/{self.key_id(logical)}", "KeyId": self.key_id(logical)}
        elif rtype in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            table = {"Arn": f"arn:{p}:lambda:{r}:{a}:function:{self.function_name(logical)}"}
        elif rtype == "AWS::SNS::Topic":
            name = self.prop(logical, "TopicName") or self.generated_name(logical)
            table = {"TopicArn": f"arn:{p}:sns:{r}:{a}:{name}", "TopicName": name}
        elif rtype == "AWS::Logs::LogGroup":
            table = {"Arn": f"arn:{p}:logs:{r}:{a}:log-group:{self.resource_ref(logical)}:*"}
        elif rtype == "AWS::Scheduler::Schedule":
            group = self.prop(logical, "GroupName") or "default"
            table = {"Arn": f"arn:{p}:scheduler:{r}:{a}:schedule/{group}/{self.resource_ref(logical)}"}
        elif rtype == "AWS::SecretsManager::Secret":
            table = {"Id": self.resource_ref(logical)}
        elif rtype == "AWS::CloudWatch::Alarm":
            table = {"Arn": f"arn:{p}:cloudwatch:{r}:{a}:alarm:{self.resource_ref(logical)}"}
        if attr not in table:
            raise Unresolvable(f"GetAtt {logical}.{attr} (type {rtype}): not modelled")
        return table[attr]

    # ------------------------------------------------------------------ the resolver
    def resolve(self, node):
        if isinstance(node, dict):
            if len(node) == 1:
                (key, arg), = node.items()
                if key == "Ref":
                    return self.ref(arg)
                if key == "Condition" and isinstance(arg, str) and (self.t.get("Conditions") or {}).get(arg) is not None:
                    return self.condition(arg)
                if key.startswith("Fn::"):
                    return self.fn(key, arg)
            out = {}
            for k, v in node.items():
                rv = self.resolve(v)
                if rv is not NO_VALUE:
                    out[str(k)] = rv
            return out
        if isinstance(node, list):
            out = []
            for v in node:
                rv = self.resolve(v)
                if rv is not NO_VALUE:
                    out.append(rv)
            return out
        if isinstance(node, bool) or node is None:
            return node
        if isinstance(node, (int, float)):
            return node
        return str(node)

    def fn(self, key, arg):
        if key == "Fn::Sub":
            if isinstance(arg, list):
                text, variables = arg[0], self.resolve(arg[1])
            else:
                text, variables = arg, {}
            return self.sub(str(text), variables)
        if key == "Fn::GetAtt":
            if isinstance(arg, str):
                logical, attr = arg.split(".", 1)
            else:
                logical, attr = self.resolve(arg[0]), self.resolve(arg[1])
            return self.getatt(logical, attr)
        if key == "Fn::Join":
            sep, items = self.resolve(arg[0]), self.resolve(arg[1])
            if not isinstance(items, list):
                raise Unresolvable(f"Fn::Join of a non-list {items!r}")
            return sep.join(str(i) for i in items)
        if key == "Fn::Split":
            sep, text = self.resolve(arg[0]), self.resolve(arg[1])
            return str(text).split(sep)
        if key == "Fn::Select":
            index, items = int(self.resolve(arg[0])), self.resolve(arg[1])
            return items[index]
        if key == "Fn::If":
            name, yes, no = arg
            return self.resolve(yes if self.condition(name) else no)
        if key == "Fn::Equals":
            a, b = self.resolve(arg[0]), self.resolve(arg[1])
            return a == b
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(a) for a in arg)
        if key == "Fn::Or":
            return any(self.resolve(a) for a in arg)
        if key == "Fn::Contains":
            items, value = self.resolve(arg[0]), self.resolve(arg[1])
            return value in items
        if key == "Fn::FindInMap":
            m, k1, k2 = (self.resolve(a) for a in arg[:3])
            try:
                return self.resolve(self.mappings[m][k1][k2])
            except KeyError as exc:
                raise Unresolvable(f"Fn::FindInMap {m}/{k1}/{k2}") from exc
        if key == "Fn::Base64":
            import base64
            return base64.b64encode(str(self.resolve(arg)).encode()).decode()
        if key == "Fn::ToJsonString":
            return json.dumps(self.resolve(arg), separators=(",", ":"))
        if key == "Fn::Length":
            return len(self.resolve(arg))
        raise Unresolvable(f"intrinsic {key} is not supported by resolve.py")

    def sub(self, text, variables):
        out, i = [], 0
        while i < len(text):
            j = text.find("${", i)
            if j < 0:
                out.append(text[i:])
                break
            out.append(text[i:j])
            if text.startswith("${!", j):
                k = text.index("}", j)
                out.append("${" + text[j + 3:k] + "}")
                i = k + 1
                continue
            k = text.index("}", j)
            name = text[j + 2:k].strip()
            if name in variables:
                value = variables[name]
            elif "." in name and name.split(".", 1)[0] in self.resources:
                value = self.getatt(*name.split(".", 1))
            else:
                value = self.ref(name)
            if isinstance(value, list) or value is NO_VALUE:
                raise Unresolvable(f"Fn::Sub variable {name} is not a string")
            out.append(str(value))
            i = k + 1
        return "".join(out)


def policy_doc(doc):
    if isinstance(doc, str):
        doc = json.loads(doc)
    return doc


def build_model(template_path, params_path):
    template, matches = decode(template_path)
    if template is None:
        raise Unresolvable(f"cannot decode {template_path}: {[str(m) for m in matches]}")
    params = json.load(open(params_path))
    rv = Resolver(template, params)
    model = {
        "template": os.path.relpath(template_path, ROOT),
        "account": rv.account, "region": rv.region, "partition": rv.partition,
        "parameters": rv.params,
        "roles": {}, "managed_policies": {}, "fence": None, "fence_arn": None,
        "bus_policies": {}, "queue_policies": {}, "key_policies": {}, "secret_policies": {},
        "function_policies": {}, "functions": {}, "resources": {}, "schedules": {},
        "event_rules": {},
    }
    role_by_arn = {}
    for logical, res in rv.resources.items():
        if not rv.resource_enabled(logical):
            continue
        rtype = res["Type"]
        if rtype == "AWS::IAM::Role":
            arn = rv.getatt(logical, "Arn")
            role_by_arn[arn] = logical
            inline = []
            for pol in rv.prop(logical, "Policies", []) or []:
                inline.append({"name": pol["PolicyName"], "document": policy_doc(pol["PolicyDocument"])})
            model["roles"][logical] = {
                "name": rv.role_name(logical), "arn": arn,
                "trust": policy_doc(rv.prop(logical, "AssumeRolePolicyDocument")),
                "inline": inline,
                "managed": rv.prop(logical, "ManagedPolicyArns", []) or [],
                "boundary": rv.prop(logical, "PermissionsBoundary"),
            }
        elif rtype == "AWS::IAM::ManagedPolicy":
            arn = rv.getatt(logical, "PolicyArn")
            model["managed_policies"][logical] = {
                "arn": arn, "document": policy_doc(rv.prop(logical, "PolicyDocument")),
                "roles": rv.prop(logical, "Roles", []) or [], "users": rv.prop(logical, "Users", []) or [],
                "groups": rv.prop(logical, "Groups", []) or [],
            }
            if logical == "UserBoundary":
                model["fence"] = model["managed_policies"][logical]["document"]
                model["fence_arn"] = arn
        elif rtype == "AWS::IAM::Policy":
            # an inline policy attached from outside the role
            doc = policy_doc(rv.prop(logical, "PolicyDocument"))
            for role_name in rv.prop(logical, "Roles", []) or []:
                model.setdefault("_extra_inline", []).append({"role_name": role_name, "name": rv.prop(logical, "PolicyName"), "document": doc})
            if rv.prop(logical, "Users") or rv.prop(logical, "Groups"):
                model.setdefault("user_policies", []).append({"logical": logical, "document": doc})
        elif rtype == "AWS::Events::EventBus":
            name = rv.prop(logical, "Name")
            model["resources"][logical] = {"type": rtype, "name": name, "arn": rv.getatt(logical, "Arn")}
            pol = rv.prop(logical, "Policy")
            if pol is not None:
                model["bus_policies"].setdefault(name, {"Version": "2012-10-17", "Statement": []})["Statement"] += _statements(policy_doc(pol))
        elif rtype == "AWS::Events::EventBusPolicy":
            bus = rv.bus_name_of(rv.prop(logical, "EventBusName"))
            stmt = rv.prop(logical, "Statement")
            if stmt is None:
                stmt = {"Sid": rv.prop(logical, "StatementId"), "Effect": "Allow", "Action": rv.prop(logical, "Action"),
                        "Principal": {"AWS": rv.prop(logical, "Principal")},
                        "Resource": f"arn:{rv.partition}:events:{rv.region}:{rv.account}:event-bus/{bus}"}
                if rv.prop(logical, "Condition") is not None:
                    raise Unresolvable(f"{logical}: EventBusPolicy.Condition (legacy form) is not modelled")
            model["bus_policies"].setdefault(bus, {"Version": "2012-10-17", "Statement": []})["Statement"] += _statements({"Statement": stmt})
        elif rtype == "AWS::SQS::QueuePolicy":
            doc = policy_doc(rv.prop(logical, "PolicyDocument"))
            for url in rv.prop(logical, "Queues"):
                qname = url.rstrip("/").split("/")[-1]
                if qname in model["queue_policies"]:
                    raise Unresolvable(f"queue {qname} named by two QueuePolicy resources (CloudFormation keeps only one)")
                model["queue_policies"][qname] = doc
        elif rtype == "AWS::SQS::Queue":
            model["resources"][logical] = {"type": rtype, "name": rv.queue_name(logical), "arn": rv.getatt(logical, "Arn"),
                                           "url": rv.resource_ref(logical)}
        elif rtype == "AWS::KMS::Key":
            model["key_policies"][logical] = {"arn": rv.getatt(logical, "Arn"), "policy": policy_doc(rv.prop(logical, "KeyPolicy"))}
            model["resources"][logical] = {"type": rtype, "arn": rv.getatt(logical, "Arn")}
        elif rtype == "AWS::KMS::Alias":
            model["resources"][logical] = {"type": rtype, "name": rv.prop(logical, "AliasName"), "target": rv.prop(logical, "TargetKeyId")}
        elif rtype == "AWS::SecretsManager::ResourcePolicy":
            model["secret_policies"][rv.prop(logical, "SecretId")] = policy_doc(rv.prop(logical, "ResourcePolicy"))
        elif rtype == "AWS::DynamoDB::Table":
            model["resources"][logical] = {"type": rtype, "name": rv.resource_ref(logical), "arn": rv.getatt(logical, "Arn")}
            if rv.prop(logical, "ResourcePolicy") is not None:
                model.setdefault("table_policies", {})[rv.resource_ref(logical)] = policy_doc(rv.prop(logical, "ResourcePolicy")["PolicyDocument"])
        elif rtype == "AWS::Events::Rule":
            model["event_rules"][logical] = {"name": rv.rule_name(logical), "arn": rv.getatt(logical, "Arn"),
                                             "bus": rv.bus_name_of(rv.prop(logical, "EventBusName")),
                                             "targets": rv.prop(logical, "Targets", []) or []}
        elif rtype == "AWS::Logs::LogGroup":
            model["resources"][logical] = {"type": rtype, "name": rv.resource_ref(logical), "arn": rv.getatt(logical, "Arn")}
        elif rtype == "AWS::Scheduler::Schedule":
            target = rv.prop(logical, "Target")
            model["schedules"][logical] = {"name": rv.resource_ref(logical), "arn": rv.getatt(logical, "Arn"),
                                           "target_arn": target["Arn"], "role_arn": target["RoleArn"]}
        elif rtype == "AWS::SNS::Topic":
            model["resources"][logical] = {"type": rtype, "arn": rv.getatt(logical, "TopicArn")}
    for extra in model.pop("_extra_inline", []):
        for logical, role in model["roles"].items():
            if role["name"] == extra["role_name"]:
                role["inline"].append({"name": extra["name"], "document": extra["document"]})
                break
        else:
            raise Unresolvable(f"AWS::IAM::Policy names role {extra['role_name']} the template does not define")

    # Functions (after roles: a function names its role by ARN).
    globals_env = ((template.get("Globals") or {}).get("Function") or {}).get("Environment", {}).get("Variables", {})
    for logical, res in rv.resources.items():
        if res["Type"] not in ("AWS::Serverless::Function", "AWS::Lambda::Function") or not rv.resource_enabled(logical):
            continue
        role_arn = rv.prop(logical, "Role")
        if role_arn is None:
            raise Unresolvable(f"function {logical} has no explicit Role (a SAM-generated role is not modelled)")
        if role_arn not in role_by_arn:
            raise Unresolvable(f"function {logical} runs as {role_arn}, not a role of this template")
        env = dict(rv.resolve(globals_env)) if res["Type"] == "AWS::Serverless::Function" else {}
        env.update(((rv.prop(logical, "Environment") or {}).get("Variables")) or {})
        sources = []
        for ev_name, ev in (rv.prop(logical, "Events") or {}).items():
            if ev.get("Type") == "SQS":
                sources.append(ev["Properties"]["Queue"])
        model["functions"][logical] = {
            "name": rv.function_name(logical), "arn": rv.getatt(logical, "Arn"), "role": role_by_arn[role_arn],
            "environment": env, "sqs_event_sources": sources,
            "log_group": f"/aws/lambda/{rv.function_name(logical)}",
        }
    for logical, res in rv.resources.items():
        if res["Type"] != "AWS::Lambda::Permission" or not rv.resource_enabled(logical):
            continue
        fn = rv.prop(logical, "FunctionName")
        fname = fn.split(":")[6] if fn.startswith("arn:") else fn
        farn = fn if fn.startswith("arn:") else f"arn:{rv.partition}:lambda:{rv.region}:{rv.account}:function:{fn}"
        principal = rv.prop(logical, "Principal")
        if principal.endswith(".amazonaws.com"):
            p = {"Service": principal}
        elif principal.isdigit():
            p = {"AWS": f"arn:{rv.partition}:iam::{principal}:root"}
        else:
            p = {"AWS": principal}
        stmt = {"Sid": logical, "Effect": "Allow", "Principal": p, "Action": rv.prop(logical, "Action"), "Resource": farn}
        cond = {}
        if rv.prop(logical, "SourceArn"):
            cond.setdefault("ArnLike", {})["aws:SourceArn"] = rv.prop(logical, "SourceArn")
        if rv.prop(logical, "SourceAccount"):
            cond.setdefault("StringEquals", {})["aws:SourceAccount"] = rv.prop(logical, "SourceAccount")
        if rv.prop(logical, "PrincipalOrgID"):
            cond.setdefault("StringEquals", {})["aws:PrincipalOrgID"] = rv.prop(logical, "PrincipalOrgID")
        if rv.prop(logical, "FunctionUrlAuthType"):
            cond.setdefault("StringEquals", {})["lambda:FunctionUrlAuthType"] = rv.prop(logical, "FunctionUrlAuthType")
        if cond:
            stmt["Condition"] = cond
        model["function_policies"].setdefault(fname, {"Version": "2012-10-17", "Statement": []})["Statement"].append(stmt)
    return model


def _statements(doc):
    st = doc.get("Statement", [])
    return st if isinstance(st, list) else [st]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--template", default=os.path.join(ROOT, "template.yaml"))
    ap.add_argument("--params", default=os.path.join(HERE, "params.local.json"))
    ap.add_argument("--out")
    args = ap.parse_args()
    try:
        model = build_model(args.template, args.params)
    except Unresolvable as exc:
        print(f"resolve.py: cannot resolve {args.template}: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(model, indent=2, sort_keys=True)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text + "\n")
        print(f"resolve.py: {len(model['roles'])} roles, fence {'present' if model['fence'] else 'ABSENT'}, "
              f"{len(model['queue_policies'])} queue policies, {len(model['bus_policies'])} bus policies, "
              f"{len(model['key_policies'])} keys, {len(model['function_policies'])} function policies -> {args.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
