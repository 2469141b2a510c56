#include "sqlite_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace b24es::sqlite {

std::optional<FileId> identify(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileId{st.st_dev, st.st_ino};
}

std::string folderOf(const std::string& path) {
  std::string::size_type slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

DatabaseFiles DatabaseFiles::record(const std::string& path) {
  DatabaseFiles files;
  files.path = path;
  files.folder = identify(folderOf(path));
  files.file = identify(path);
  files.wal = identify(path + "-wal");
  files.shm = identify(path + "-shm");
  return files;
}

std::string DatabaseFiles::changed() const {
  auto check = [](const std::optional<FileId>& recorded, const std::string& at,
                  const std::string& what) -> std::string {
    if (!recorded) return {};  // nothing was there to lose
    std::optional<FileId> now = identify(at);
    if (!now) return "the " + what + " " + at + " was removed";
    if (*now != *recorded) return "the " + what + " " + at + " was replaced";
    return {};
  };
  // The folder first: removing it removes the others, and that is the sentence to log.
  for (std::string change :
       {check(folder, folderOf(path), "database folder"), check(file, path, "database file"),
        check(wal, path + "-wal", "WAL file"), check(shm, path + "-shm", "shared-memory file")}) {
    if (!change.empty()) return change;
  }
  return {};
}

void createFolders(const std::string& folder) {
  if (folder.empty() || folder == "." || folder == "/") return;
  struct stat st {};
  if (::stat(folder.c_str(), &st) == 0) return;
  std::string::size_type slash = folder.rfind('/');
  if (slash != std::string::npos && slash > 0) createFolders(folder.substr(0, slash));
  // EEXIST: created meanwhile by another process (or a trailing slash named it twice).
  if (::mkdir(folder.c_str(), 0700) != 0 && errno != EEXIST) {
    throw std::runtime_error("cannot create folder " + folder + ": " + std::strerror(errno));
  }
}

void syncFolder(const std::string& folder) {
  int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    std::string error = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot sync folder " + folder + ": " + error);
  }
  ::close(fd);
}

}  // namespace b24es::sqlite
