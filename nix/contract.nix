# The persist contract (persist-layout.json) turned into the values the NixOS modules use.
#
# Pure: builtins only, no nixpkgs, so `nix-instantiate --eval --strict --json nix/contract.nix`
# works anywhere and tests/nix/test_nix_contract.py can compare it with what provision/core/layout.py reads.
# Every path and mode the flake uses for /persist comes from here; none is typed twice.
{
  layout ? builtins.fromJSON (builtins.readFile ./persist-layout.json),
}:
let
  inherit (layout) mountPoint;

  fail = msg: throw "persist-layout.json: ${msg}";

  hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
  dropPrefix =
    prefix: s: builtins.substring (builtins.stringLength prefix) (builtins.stringLength s) s;

  # Where a persist path appears in the running VM.
  guestPath = path: if path == "/" then mountPoint else mountPoint + path;

  entries = layout.entries;
  byPath = builtins.listToAttrs (
    map (e: {
      name = e.path;
      value = e;
    }) entries
  );
  withPersist = kind: builtins.filter (e: (e.persist or null) == kind) entries;

  byRole =
    role:
    let
      found = builtins.filter (e: (e.role or null) == role) entries;
    in
    if builtins.length found == 1 then
      builtins.head found
    else
      fail "expected exactly one entry with role \"${role}\", found ${toString (builtins.length found)}";

  # An optional role's guest path, or null when the layout has no such entry.
  optionalRole =
    role:
    let
      found = builtins.filter (e: (e.role or null) == role) entries;
    in
    if found == [ ] then null else guestPath (builtins.head found).path;

  user = {
    inherit (layout.user)
      name
      uid
      group
      gid
      ;
    home = "/home/${layout.user.name}";
  };

  # The contract stores numeric owners (there is no /etc/passwd offline); NixOS wants names.
  ownerName =
    uid:
    if uid == 0 then
      "root"
    else if uid == user.uid then
      user.name
    else
      fail "uid ${toString uid} is neither root nor ${user.name}";
  groupName =
    gid:
    if gid == 0 then
      "root"
    else if gid == user.gid then
      user.group
    else
      fail "gid ${toString gid} is neither root nor ${user.group}";

  parentOf = path: dirOf path;

  # A persisted file's parent directory, as impermanence should create it if it is missing.
  parentDirectoryOf =
    path:
    let
      parent = byPath.${parentOf path} or (fail "no entry for the parent of ${path}");
    in
    {
      user = ownerName parent.uid;
      group = groupName parent.gid;
      inherit (parent) mode;
    };

  userRelative =
    e:
    if hasPrefix "${user.home}/" e.path then
      dropPrefix "${user.home}/" e.path
    else
      fail "${e.path} is marked user-directory but is not under ${user.home}";

  authorizedKeys = byRole "authorized-keys";
  hostKey = byRole "host-key";
  hostKeyType =
    let
      m = builtins.match "ssh_host_([a-z0-9]+)_key" (baseNameOf hostKey.path);
    in
    if m == null then fail "cannot tell the key type of ${hostKey.path}" else builtins.head m;
in
{
  inherit (layout) version label fsType;
  inherit mountPoint user;

  # The persist filesystem, mounted by label.
  device = "/dev/disk/by-label/${layout.label}";

  # The other two partitions of the zvm disk (not part of the JSON: the tool only touches persist).
  disk = {
    espLabel = "BOOT";
    nixLabel = "nix";
    persistLabel = layout.label;
  };

  # environment.persistence.${mountPoint}
  persistence = {
    directories = map (e: {
      directory = e.path;
      user = ownerName e.uid;
      group = groupName e.gid;
      inherit (e) mode;
    }) (withPersist "directory");
    files = map (e: {
      file = e.path;
      parentDirectory = parentDirectoryOf e.path;
    }) (withPersist "file");
    users.${user.name}.directories = map (e: {
      directory = userRelative e;
      user = ownerName e.uid;
      group = groupName e.gid;
      inherit (e) mode;
    }) (withPersist "user-directory");
  };

  # users.users.<name>.hashedPasswordFile
  passwordFile = guestPath (byRole "password-hash").path;

  # services.openssh.authorizedKeysFiles: the contract's path with the user's name replaced by %u.
  authorizedKeysFile =
    if hasPrefix "${user.home}/" authorizedKeys.path then
      "${mountPoint}/home/%u/${dropPrefix "${user.home}/" authorizedKeys.path}"
    else
      fail "the authorized-keys entry is not under ${user.home}";

  # services.openssh.hostKeys
  hostKeys = [
    {
      path = guestPath hostKey.path;
      type = hostKeyType;
    }
  ];
  hostKeyPublic = guestPath (byRole "host-key-public").path;

  machineId = guestPath (byRole "machine-id").path;

  # sshd's certificate files (modules/hardening.nix), each written by the tool only when asked for:
  # HostCertificate, TrustedUserCAKeys, AuthorizedPrincipalsFile.
  certificates = {
    hostCertificate = optionalRole "host-certificate";
    trustedUserCAKeys = optionalRole "trusted-user-ca-keys";
    authorizedPrincipalsFile = optionalRole "authorized-principals";
  };

  # The seeded hostname (modules/hostname.nix); absent on an unseeded image.
  hostnameFile = guestPath (byRole "hostname").path;

  # The seeding record the tool appends to: outside the allowlist (no `persist`), so the VM binds it nowhere;
  # root reads it under the persist mount (modules/ephemeral.nix asserts that nothing persists it).
  seedRecord = guestPath (byRole "seed-record").path;

  # The release signers the hourly update verifies against (modules/updates.nix); absent: not verified.
  updateSignersFile = guestPath (byRole "update-signers").path;

  netbird = {
    setupKeyFile = guestPath (byRole "netbird-setup-key").path;
    managementUrlFile = guestPath (byRole "netbird-management-url").path;
  };
}
