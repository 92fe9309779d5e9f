# Both functions declare nothing when BUILD_TESTING is off: each folder names
# its tests unconditionally, and this is the one place that switch is read.
if(BUILD_TESTING)
  # What the sanitizer run builds (scripts/test.sh): every test but the LONG
  # ones, and the binaries the tests start.
  add_custom_target(sanitized_tests)
endif()

# vmgroup_unit_test(NAME src... LIBS lib...): a GoogleTest binary beside the code
# it tests, labelled "unit" (fast, no QEMU).
function(vmgroup_unit_test name)
  if(NOT BUILD_TESTING)
    return()
  endif()
  cmake_parse_arguments(ARG "" "" "LIBS" ${ARGN})
  add_executable(${name} ${ARG_UNPARSED_ARGUMENTS})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest_main GTest::gmock)
  gtest_discover_tests(${name} PROPERTIES LABELS unit DISCOVERY_TIMEOUT 60)
  add_dependencies(sanitized_tests ${name})
endfunction()

# vmgroup_integration_test(NAME [LONG] src... LIBS lib...): runs real QEMU;
# labelled "integration". Run one at a time (RUN_SERIAL): they share two cores.
# LONG: its minutes go to Linux guests booting and working under TCG, or to
# libvirtd, not to our code; also labelled "long", and left out of the
# sanitizer run, whose time CI cannot spare twice (the shorter tests take the
# same paths through our code).
function(vmgroup_integration_test name)
  if(NOT BUILD_TESTING)
    return()
  endif()
  cmake_parse_arguments(ARG "LONG" "" "LIBS" ${ARGN})
  add_executable(${name} ${ARG_UNPARSED_ARGUMENTS})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest_main GTest::gmock)
  set(labels integration)
  if(ARG_LONG)
    list(APPEND labels long)
  else()
    add_dependencies(sanitized_tests ${name})
  endif()
  gtest_discover_tests(${name} PROPERTIES LABELS "${labels}" RUN_SERIAL TRUE TIMEOUT 600
                       DISCOVERY_TIMEOUT 60)
endfunction()
